"""Admin for model versions, threshold versions and their audit trail.

Versions are recorded, not typed in: the admin shows their metrics and score
distributions and offers the two changes a staff user makes, through services.
"""

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from clipmatch.inference.engine import ModelLoadError
from clipmatch.models import ModelAuditEntry, ModelVersion, ThresholdVersion
from clipmatch.plots import histogram_svg
from clipmatch.services import (
    ModelVersionError,
    model_version_activate,
    model_version_shadow,
    threshold_version_apply,
)

METRIC_KEYS = ("n", "roc_auc", "pr_auc", "threshold", "precision", "recall", "f1")


def metrics_table(metrics: dict) -> str:
    """A small table of the metrics dicts found in a version's metrics."""
    rows = []
    for name, values in metrics.items():
        if isinstance(values, dict) and "roc_auc" in values:
            rows.append((name, values))
    if not rows:
        return "-"
    head = format_html_join("", "<th>{}</th>", ((k,) for k in METRIC_KEYS))
    body = format_html_join(
        "",
        "<tr><th>{}</th>{}</tr>",
        (
            (
                name,
                format_html_join(
                    "",
                    "<td>{}</td>",
                    ((_fmt(values.get(k)),) for k in METRIC_KEYS),
                ),
            )
            for name, values in rows
        ),
    )
    return format_html("<table><tr><th></th>{}</tr>{}</table>", head, body)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "-" if value is None else str(value)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "version",
        "active",
        "is_shadow",
        "val_roc_auc",
        "activated_at",
        "created_at",
    ]
    list_select_related = ["activated_by"]
    readonly_fields = [
        "name",
        "source",
        "fingerprint",
        "is_active",
        "is_shadow",
        "activated_at",
        "activated_by",
        "metrics_table",
        "distribution",
        "thresholds",
        "metrics",
        "created_at",
    ]
    exclude = ["report"]
    actions = ["activate", "shadow"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="Active", boolean=True)
    def active(self, obj: ModelVersion) -> bool:
        return obj.is_active

    @admin.display(description="Validation ROC-AUC")
    def val_roc_auc(self, obj: ModelVersion) -> str:
        value = (obj.metrics.get("validation") or {}).get("roc_auc")
        return _fmt(value)

    @admin.display(description="Metrics")
    def metrics_table(self, obj: ModelVersion) -> str:
        return metrics_table(obj.metrics)

    @admin.display(description="Score distributions (validation)")
    def distribution(self, obj: ModelVersion) -> str:
        histogram = obj.report.get("distribution") or obj.metrics.get("distribution")
        if not histogram:
            return "No labelled scores were recorded for this version."
        return histogram_svg(
            {"match": histogram["match"], "mismatch": histogram["mismatch"]},
            [float(edge) for edge in histogram["edges"]],
            lines=obj.thresholds.get("title", {}),
            share=True,
            x_label="raw cosine of image and title",
        )

    @admin.action(
        description="Score in shadow (beside the active model, never routing)",
        permissions=["change"],
    )
    def shadow(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(
                request,
                "Select exactly one version to score in shadow.",
                messages.ERROR,
            )
            return
        version = queryset.get()
        try:
            model_version_shadow(version=version, actor=request.user)
        except (ModelVersionError, ModelLoadError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(
            request, f"{version} scores in shadow; the catalog is queued for it."
        )

    @admin.action(
        description="Activate (new scores use it; rescore the catalog)",
        permissions=["change"],
    )
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(
                request, "Select exactly one version to activate.", messages.ERROR
            )
            return
        version = queryset.get()
        try:
            model_version_activate(version=version, actor=request.user)
        except (ModelVersionError, ModelLoadError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(
            request, f"{version} is active; a rescore of the catalog is queued."
        )


@admin.register(ThresholdVersion)
class ThresholdVersionAdmin(admin.ModelAdmin):
    list_display = ["pk", "model_version", "status", "created_at", "applied_at"]
    list_filter = ["status"]
    list_select_related = ["model_version", "applied_by"]
    readonly_fields = [
        "model_version",
        "status",
        "thresholds",
        "figures",
        "created_at",
        "applied_at",
        "applied_by",
    ]
    actions = ["apply"]

    def has_add_permission(self, request):
        return False

    @admin.action(
        description="Apply (scores from now on use these thresholds)",
        permissions=["change"],
    )
    def apply(self, request, queryset):
        for proposal in queryset:
            try:
                threshold_version_apply(proposal=proposal, actor=request.user)
            except ModelVersionError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.message_user(
                request,
                f"Thresholds #{proposal.pk} apply to listings scored from now on; "
                "rescore to re-route the rest.",
            )


@admin.register(ModelAuditEntry)
class ModelAuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "model_version", "actor"]
    list_filter = ["action"]
    list_select_related = ["model_version", "actor"]
    readonly_fields = [
        "created_at",
        "action",
        "model_version",
        "threshold_version",
        "actor",
        "detail",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
