"""Listings, their images, their CLIP scores and their moderation history."""

from django.apps import AppConfig


class ListingsConfig(AppConfig):
    name = "listings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # checks registers itself on import.
        from listings import checks, metrics, observability, signals  # noqa: F401

        signals.connect(self)
        # django-q2's task hooks: registered in every process, run where tasks are
        # queued (the request id) and in the workers (log lines, metrics, preload).
        observability.connect()
        metrics.connect()
