"""Listings, their images, their CLIP scores and their moderation history."""

from django.apps import AppConfig


class ListingsConfig(AppConfig):
    name = "listings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from listings import checks, signals  # noqa: F401  (checks registers itself)

        signals.connect(self)
