"""The API refuses what its schema refuses (what schemathesis found): empty
filters, a page size that is no number, hidden characters, non-ASCII prices and
URLs, and a deleted webhook's deliveries."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conftest import png_bytes
from listings.tests.factories import CategoryFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/listings/"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"updated_since": ""}, "updated_since", "Datetime has wrong format."),
        ({"category": ""}, "category", "This field may not be blank."),
        ({"status": ""}, "status", '"" is not a valid choice.'),
        ({"page_size": "null"}, "page_size", "Send a whole number from 1 to 100."),
        ({"page_size": "0"}, "page_size", "Send a whole number from 1 to 100."),
    ],
)
def test_an_empty_or_malformed_list_parameter_is_400(
    moderator_api, params, field, message
):
    response = moderator_api.get(URL, params)

    assert response.status_code == 400
    assert response.json()["fields"][field][0].startswith(message)


@pytest.mark.parametrize(
    "params", [{"reason": ""}, {"category": ""}, {"model_version": ""}]
)
def test_an_empty_review_filter_is_400(moderator_api, params):
    response = moderator_api.post(
        "/api/v1/review/next/?" + "&".join(f"{k}=" for k in params)
    )

    assert response.status_code == 400


def _create(client, **fields):
    CategoryFactory(name="sneaker")
    data = {
        "title": "red striped sneaker",
        "description": "A red sneaker.",
        "category": "sneaker",
        "price": "49.90",
        "images": [SimpleUploadedFile("a.png", png_bytes(), "image/png")],
        **fields,
    }
    return client.post(URL, data, format="multipart")


@pytest.mark.parametrize(
    "title",
    [
        "red \u202esneaker",  # right-to-left override
        "\ufeffred sneaker",  # byte order mark
        "red sneaker\ufdd0",  # a noncharacter
        "red sneaker\U0001fffe",  # a plane's last noncharacters
        "red \u2066sneaker\u2069",  # an isolate
    ],
)
def test_a_title_with_hidden_characters_is_400(seller_api, title):
    response = _create(seller_api, title=title)

    assert response.status_code == 400
    assert response.json()["fields"]["title"][0].startswith(
        "Contains the invisible character U+"
    )


def test_a_description_with_a_direction_override_is_400(seller_api):
    response = _create(seller_api, description="fine \u202d print")

    assert response.json()["fields"]["description"] == [
        "Contains the invisible character U+202D (a direction override, byte order "
        "mark or noncharacter); remove it."
    ]


@pytest.mark.parametrize("price", ["\u0661\u0662\u0663", "1_000", "1e3", " 12"])
def test_a_price_not_in_ascii_digits_is_400(seller_api, price):
    response = _create(seller_api, price=price)

    assert response.status_code == 400
    assert response.json()["fields"]["price"] == [
        "Write the price with the digits 0-9 and at most two decimals, like 49.90."
    ]


def test_a_plain_price_and_an_accented_title_are_fine(seller_api):
    response = _create(seller_api, title="baskets rouges à rayures", price="1000")

    assert response.status_code == 201
    assert response.json()["price"] == "1000.00"


@pytest.mark.parametrize(
    "url",
    [
        "https://bücher.example/hook",
        "https://example.com/ünïcode",
        "https://example.com/100%/off",
    ],
)
def test_a_webhook_url_outside_rfc_3986_is_400(seller_api, url):
    response = seller_api.post(
        "/api/v1/webhooks/",
        {"url": url, "secret": "a-long-shared-secret-1234"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["fields"]["url"] == [
        "Enter the URL in ASCII, percent-encoded (an international host name in "
        "its xn-- form)."
    ]


def test_a_deleted_webhooks_deliveries_are_404(seller_api):
    created = seller_api.post(
        "/api/v1/webhooks/",
        {"url": "https://xn--bcher-kva.example/hook", "secret": "s" * 20},
        format="json",
    )
    endpoint = created.json()["id"]
    path = f"/api/v1/webhooks/{endpoint}/deliveries/"
    before = seller_api.get(path).status_code

    seller_api.delete(f"/api/v1/webhooks/{endpoint}/")

    assert created.status_code == 201
    assert before == 200
    assert seller_api.get(path).status_code == 404


def _schema(client) -> dict:
    response = client.get(
        "/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )
    assert response.status_code == 200
    return response.json()


def test_a_created_listing_links_to_the_operations_on_it(client):
    schema = _schema(client)

    created = schema["paths"]["/api/v1/listings/"]["post"]["responses"]["201"]

    assert created["links"]["get_listing"] == {
        "operationId": "get_listing",
        "parameters": {"id": "$response.body#/id"},
    }
    assert sorted(created["links"]) == [
        "appeal_listing",
        "delete_listing",
        "get_listing",
        "list_listing_decisions",
        "update_listing",
    ]


def test_every_link_names_an_operation_with_an_id_and_a_field_its_source_returns(
    client,
):
    schema = _schema(client)
    components = schema["components"]["schemas"]
    operations = {
        operation["operationId"]: operation
        for path_item in schema["paths"].values()
        for operation in path_item.values()
    }

    checked = []
    for name, operation in operations.items():
        for status, response in operation["responses"].items():
            for link in response.get("links", {}).values():
                target = operations[link["operationId"]]
                path_ids = [
                    p["name"] for p in target["parameters"] if p["in"] == "path"
                ]
                ref = response["content"]["application/json"]["schema"]["$ref"]
                body = components[ref.rsplit("/", 1)[1]]
                pointer = link["parameters"]["id"].removeprefix("$response.body#/")
                first = pointer.split("/")[0]
                assert path_ids == ["id"], (name, link)
                assert first in body["properties"], (name, status, pointer)
                checked.append((name, link["operationId"]))

    assert len(checked) == 30
    assert ("claim_next_review_item", "decide_review_item") in checked


def test_a_model_version_filter_beyond_any_id_is_400_not_500(moderator_api):
    response = moderator_api.post(
        "/api/v1/review/next/?model_version=169334173054014914933033747349504"
    )

    assert response.status_code == 400
    assert response.json()["fields"] == {
        "model_version": [
            "Ensure this value is less than or equal to 9223372036854775807."
        ]
    }
