"""?wait=N on create returns the real worker's verdict for a demo listing."""

import io
import random
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.text import slugify

from conftest import wait_for
from listings.demo import categories_ensure
from listings.models import Listing
from listings.tests.factories import ListingImageFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_create_with_wait_returns_the_verdict_of_the_bundled_model(
    use_model, bundled_model_dir, seller_api, qcluster
):
    from training import catalog

    use_model(bundled_model_dir)
    categories_ensure(catalog.CATEGORIES)
    # The worker's first task loads the model and embeds the categories' prompts,
    # which can take longer than ?wait on a busy machine: score one listing first,
    # so that ?wait below waits for a worker that is ready, not for its start-up.
    warm_up = ListingImageFactory().listing  # its save queues its scoring
    wait_for(
        lambda: Listing.objects.exclude(status="pending").filter(pk=warm_up.pk),
        120,
        "the worker to score a first listing",
        qcluster.log_path,
    )
    rng = random.Random(11)
    product = catalog.random_product(rng)
    buffer = io.BytesIO()
    catalog.render_product(product, size=192, rng=rng).save(buffer, format="PNG")

    started = time.monotonic()
    response = seller_api.post(
        "/api/v1/listings/?wait=10",
        {
            "title": catalog.product_title(product, rng),
            "description": catalog.product_description(product, rng),
            "category": slugify(product.category),
            "price": "19.99",
            "images": [SimpleUploadedFile("p.png", buffer.getvalue(), "image/png")],
        },
        format="multipart",
    )
    elapsed = time.monotonic() - started

    body = response.json()
    assert response.status_code == 201, body
    assert body["status"] == "passed", (body, qcluster.log_path.read_text()[-2000:])
    assert body["score"]["verdict"] == "pass"
    assert body["score"]["model_version"]["name"] == "clipmatch-mini"
    assert body["score"]["reasons"] == ["The image matches the title and description."]
    assert elapsed < 10
