"""Admin for model versions (read-only: they are recorded, not typed in)."""

from django.contrib import admin

from clipmatch.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "source", "created_at"]
    readonly_fields = [
        "name",
        "source",
        "fingerprint",
        "thresholds",
        "metrics",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False
