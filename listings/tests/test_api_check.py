"""The pre-publish check, model versions, throttling and the schema."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.throttling import ScopedRateThrottle

from clipmatch.models import ModelVersion
from clipmatch.services import model_version_active
from conftest import png_bytes
from listings.models import Listing
from listings.services.assessment import content_assess
from listings.tests.conftest import HOLD_ALL
from listings.tests.factories import CategoryFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/check/"


def check(client, **fields):
    data = {
        "title": "red striped sneaker",
        "description": "A red sneaker.",
        "category": "sneaker",
        "image": SimpleUploadedFile("p.png", png_bytes(), "image/png"),
        **fields,
    }
    return client.post(URL, data, format="multipart")


def test_check_scores_with_the_same_scorer_as_a_listing_and_stores_none(
    seller_api, tiny_model
):
    CategoryFactory(name="sneaker")

    response = check(seller_api)

    body = response.json()
    active = model_version_active()
    expected = content_assess(
        title="red striped sneaker",
        description="A red sneaker.",
        category_name="sneaker",
        images=[png_bytes()],
        active=active,
    )
    assert response.status_code == 200
    assert body["verdict"] == "pass" == expected.verdict
    assert body["similarity"] == pytest.approx(expected.similarity)
    assert body["reasons"] == ["The image matches the title and description."]
    assert body["model_version"]["name"] == "tiny-clip-0"
    assert body["images"][0]["bands"] == {"title": "pass", "description": "pass"}
    assert Listing.objects.count() == 0


def test_check_applies_the_active_thresholds(seller_api, use_model, tiny_clip_dir):
    use_model(tiny_clip_dir, HOLD_ALL)
    CategoryFactory(name="sneaker")

    body = check(seller_api).json()

    assert body["verdict"] == "hold"
    assert body["reasons"][0].startswith("The image does not match the title")


def test_check_refuses_a_bad_image_and_an_unknown_category(seller_api, tiny_model):
    CategoryFactory(name="sneaker")

    bad_image = check(
        seller_api, image=SimpleUploadedFile("p.png", b"nope", "image/png")
    )
    bad_category = check(seller_api, category="spaceship")

    assert bad_image.status_code == 400
    assert bad_image.json()["fields"] == {
        "image": [
            "Unreadable image: the file is not an image in any format we can read."
        ]
    }
    assert bad_category.status_code == 400
    assert bad_category.json()["fields"] == {
        "category": ["Object with slug=spaceship does not exist."]
    }


def test_check_with_a_missing_model_is_503_and_never_falls_back(
    seller_api, use_model, tmp_path
):
    CategoryFactory(name="sneaker")
    use_model(tmp_path / "no-such-model", HOLD_ALL)

    response = check(seller_api)

    assert response.status_code == 503
    assert response.json()["code"] == "unavailable"
    assert response.json()["message"].startswith("The model cannot run: ")
    assert str(tmp_path / "no-such-model") in response.json()["message"]
    assert ModelVersion.objects.count() == 0


def test_check_is_throttled_per_user_with_429(seller_api, tiny_model, monkeypatch):
    CategoryFactory(name="sneaker")
    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"check": "2/minute"}, raising=False
    )

    answers = [check(seller_api) for _ in range(3)]
    limited = check(seller_api)

    assert [a.status_code for a in answers] == [200, 200, 429]
    # The tightest throttle (check's 2 a minute, not the user's 2,000 an hour).
    assert [(a["RateLimit-Limit"], a["RateLimit-Remaining"]) for a in answers] == [
        ("2", "1"),
        ("2", "0"),
        ("2", "0"),
    ]
    assert 0 < int(answers[0]["RateLimit-Reset"]) <= 60
    assert limited.json()["code"] == "throttled"
    assert limited.json()["message"].startswith("Request was throttled.")
    assert int(limited["Retry-After"]) > 0


def test_model_versions_are_listed_for_moderators_and_refused_to_sellers(
    moderator_api, seller_api
):
    version = ModelVersion.objects.create(
        name="m",
        source="/models/m",
        fingerprint="a" * 64,
        thresholds={"title": {"pass": 0.3, "hold": 0.2}},
        metrics={"auc": 0.99},
    )

    listed = moderator_api.get("/api/v1/model-versions/")
    one = moderator_api.get(f"/api/v1/model-versions/{version.pk}/")
    refused = seller_api.get("/api/v1/model-versions/")

    assert listed.status_code == 200
    assert [row["version"] for row in listed.json()["results"]] == ["m@aaaaaaaaaaaa"]
    assert one.json()["metrics"] == {"auc": 0.99}
    assert one.json()["thresholds"] == {"title": {"pass": 0.3, "hold": 0.2}}
    assert refused.status_code == 403
    assert refused.json()["message"] == "Only moderators and staff can do this."


def test_the_schema_is_valid_openapi_3_and_documents_the_error_shape(client):
    from drf_spectacular.validation import validate_schema

    response = client.get(
        "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )

    schema = response.json()
    validate_schema(schema)
    create = schema["paths"]["/api/v1/listings/"]["post"]
    assert response.status_code == 200
    assert schema["openapi"].startswith("3.")
    assert set(create["responses"]) == {
        "201",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "415",
        "422",
        "429",
    }
    assert create["operationId"] == "create_listing"
    assert "Idempotency-Key" in [p["name"] for p in create["parameters"]]
    codes = schema["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert {"unknown_field", "stale_content", "claimed_by_another"} <= set(codes)
    operation_ids = [
        operation["operationId"]
        for operations in schema["paths"].values()
        for operation in operations.values()
    ]
    assert not [name for name in operation_ids if name.startswith(("v1_", "api_"))]
    assert create["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "503" in schema["paths"]["/api/v1/check/"]["post"]["responses"]


def test_the_docs_page_is_served_with_local_assets(client):
    response = client.get("/api/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert (
        "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    )
    assert "cdn.jsdelivr.net" not in page


def test_staff_who_may_change_models_activate_a_version_and_others_cannot(
    moderator_api, tiny_model, tiny_clip_dir, monkeypatch
):
    from django.contrib.auth import get_user_model

    from listings.tests.conftest import token_client

    queued_rescores = []
    monkeypatch.setattr(
        "listings.signals.queue_catalog_rescore", queued_rescores.append
    )
    version = model_version_active().version
    admin_api = token_client(
        get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    )
    path = f"/api/v1/model-versions/{version.pk}/activate/"

    refused = moderator_api.post(path)
    activated = admin_api.post(path)
    again = admin_api.post(path)

    assert refused.status_code == 403
    assert refused.json()["message"] == (
        "Only staff who may change model versions can activate one."
    )
    assert activated.status_code == 200
    assert activated.json()["is_active"] is True
    assert again.status_code == 409
    assert again.json()["message"] == f"{version} is already the active version."
    assert ModelVersion.objects.get(pk=version.pk).is_active


def test_activating_a_version_whose_files_are_gone_is_a_409_not_a_500(
    tiny_model, tmp_path, monkeypatch
):
    import shutil

    from django.contrib.auth import get_user_model

    from clipmatch.services import model_version_register
    from conftest import build_tiny_clip
    from listings.tests.conftest import token_client

    path = build_tiny_clip(tmp_path / "gone", seed=4)
    version, _ = model_version_register(
        path=str(path), report={"accepted": True, "refusals": []}
    )
    shutil.rmtree(path)
    admin_api = token_client(
        get_user_model().objects.create_superuser("root", "r@example.com", "pw")
    )

    response = admin_api.post(f"/api/v1/model-versions/{version.pk}/activate/")

    assert response.status_code == 409
    assert response.json()["code"] == "model_files_refused"
    assert "are missing" in response.json()["message"]
    assert not ModelVersion.objects.filter(is_active=True).exists()
