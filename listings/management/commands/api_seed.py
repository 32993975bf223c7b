"""Seed what an API smoke run needs: a seller, a moderator, tokens, a listing."""

import io
import json
import random

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from clipmatch.services import model_version_active
from listings.demo import categories_ensure
from listings.services.accounts import api_token_issue, seller_ensure
from listings.services.lifecycle import listing_create
from listings.services.scoring import listing_score

SELLER, MODERATOR = "api-seller", "api-moderator"


class Command(BaseCommand):
    help = (
        "Create the api-seller and api-moderator logins with tokens, the catalog's "
        "categories and three listings of the seller scored by the active model (one "
        "honest, two mismatched); print the tokens. Idempotent."
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
            # An honest listing and two planted mismatches, scored here by the real
            # model so that the moderation endpoints have items to work on.
            rng = random.Random(0)
            product = catalog.random_product(rng)
            shown = [
                product,
                catalog.swap_attribute(product, "colour", rng),
                catalog.swap_attribute(product, "category", rng),
            ]
            for picture in shown:
                buffer = io.BytesIO()
                catalog.render_product(picture, size=192, rng=rng).save(buffer, "PNG")
                with transaction.atomic():
                    listing = listing_create(
                        seller=seller,
                        title=catalog.product_title(product, rng),
                        description=catalog.product_description(product, rng),
                        category=categories[product.category],
                        price="10.00",
                        images=[("photo.png", buffer.getvalue())],
                    )
                listing_score(listing_id=listing.pk)
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
