"""The CLIP engine app: model loading, embeddings and model versions."""

from django.apps import AppConfig


class ClipmatchConfig(AppConfig):
    name = "clipmatch"
    verbose_name = "CLIP models"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from clipmatch import checks  # noqa: F401  (registers the system checks)
