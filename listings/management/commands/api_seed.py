"""Seed what an API smoke run needs: a seller, a moderator, tokens, a listing."""

import io
import json
import random

from django.core.management import call_command
from django.core.management.base import BaseCommand

from listings.demo import categories_ensure
from listings.services import (
    api_token_issue,
    listing_create,
    model_version_active,
    seller_ensure,
)

SELLER, MODERATOR = "api-seller", "api-moderator"


class Command(BaseCommand):
    help = (
        "Create the api-seller and api-moderator logins with tokens, the catalog's "
        "categories, one listing of the seller and the active model's version row; "
        "print the tokens. Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print JSON only.")

    def handle(self, *args, **options):
        from django.contrib.auth import get_user_model

        from training import catalog

        categories = categories_ensure(catalog.CATEGORIES)
        seller = seller_ensure(username=SELLER)
        call_command("create_moderator", username=MODERATOR, stdout=io.StringIO())
        moderator = get_user_model().objects.get(username=MODERATOR)
        if not seller.listings.exists():
            rng = random.Random(0)
            product = catalog.random_product(rng)
            buffer = io.BytesIO()
            catalog.render_product(product, size=64, rng=rng).save(buffer, "PNG")
            listing_create(
                seller=seller,
                title=catalog.product_title(product, rng),
                description=catalog.product_description(product, rng),
                category=categories[product.category],
                price="10.00",
                images=[("photo.png", buffer.getvalue())],
            )
        model_version_active()  # records the configured model's version row
        tokens = {
            "seller_token": api_token_issue(user=seller),
            "moderator_token": api_token_issue(user=moderator),
        }
        if options["json"]:
            self.stdout.write(json.dumps(tokens))
            return
        for name, token in tokens.items():
            self.stdout.write(f"{name}: {token}")
