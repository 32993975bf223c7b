"""Admin for model versions, threshold versions and their audit trail.

Versions are recorded, not typed in: the admin shows their metrics and score
distributions and offers the two changes a staff user makes, through services.
"""

from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Q, Value
from django.utils.html import format_html, format_html_join

from clipmatch import conf, runtime
from clipmatch.inference.sources import ModelLoadError
from clipmatch.models import ModelAuditEntry, ModelVersion, ThresholdVersion
from clipmatch.plots import histogram_svg
from clipmatch.runtime import resolve
from clipmatch.services import (
    ModelVersionError,
    model_version_activate,
    model_version_shadow,
    threshold_version_apply,
)

METRIC_KEYS = ("n", "roc_auc", "pr_auc", "threshold", "precision", "recall", "f1")


def metrics_table(metrics: dict) -> str:
    """The version's figures as tables, whichever of the two shapes they come in.

    Fine-tuning records one dict of figures per split ({"validation": {"roc_auc":
    ...}}); the bundled model's training records one dict per figure, keyed by text
    field ({"roc_auc": {"title": ...}}). Either way a figure is shown once.
    """
    per_split = [
        (name, values)
        for name, values in metrics.items()
        if isinstance(values, dict) and "roc_auc" in values
    ]
    per_figure = [
        (name, values)
        for name, values in metrics.items()
        if isinstance(values, dict)
        and values
        and "roc_auc" not in values
        and all(isinstance(v, int | float) for v in values.values())
    ]
    tables = [_table(per_split, METRIC_KEYS)] if per_split else []
    alike: dict[tuple, list] = {}  # figures over the same fields share a table
    for name, values in per_figure:
        alike.setdefault(tuple(values), []).append((name, values))
    tables += [_table(rows, columns) for columns, rows in alike.items()]
    if not tables:
        return "-"
    return format_html_join("", "{}", ((table,) for table in tables))


def _table(rows: list[tuple[str, dict]], columns) -> str:
    head = format_html_join("", "<th>{}</th>", ((k,) for k in columns))
    body = format_html_join(
        "",
        "<tr><th>{}</th>{}</tr>",
        (
            (
                name,
                format_html_join(
                    "", "<td>{}</td>", ((_fmt(values.get(k)),) for k in columns)
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
        "precision",
        "in_force",
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
        "precision",
        "is_active",
        "is_shadow",
        "activated_at",
        "activated_by",
        "metrics_table",
        "distribution",
        "thresholds_table",
        "created_at",
    ]
    exclude = ["report", "thresholds", "metrics"]
    actions = ["activate", "shadow"]

    def has_add_permission(self, request):
        return False

    def get_queryset(self, request):
        # The version in force is the activated one, or, while none is, the row of
        # the configured model (the bundled one by default): not "is_active".
        queryset = super().get_queryset(request)
        if ModelVersion.objects.filter(is_active=True).exists():
            return queryset.annotate(in_force_flag=Q(is_active=True))
        try:
            source = resolve(conf.get("MODEL"))
        except (ModelLoadError, ImproperlyConfigured):
            return queryset.annotate(in_force_flag=Value(False))
        return queryset.annotate(
            in_force_flag=Q(
                fingerprint=source.fingerprint,
                source=source.ref,
                precision=runtime.precision(),
            )
        )

    @admin.display(description="In force", boolean=True, ordering="-is_active")
    def in_force(self, obj: ModelVersion) -> bool:
        return bool(obj.in_force_flag)

    @admin.display(description="Thresholds")
    def thresholds_table(self, obj: ModelVersion) -> str:
        fields = [
            (name, cuts)
            for name, cuts in obj.thresholds.items()
            if isinstance(cuts, dict) and {"pass", "hold"} <= set(cuts)
        ]
        if not fields:
            return "-"
        table = _table(fields, ("pass", "hold"))
        top_k = obj.thresholds.get("category_top_k")
        if top_k:
            return format_html(
                "{}<p>The listed category must rank within the top {}.</p>",
                table,
                top_k,
            )
        return table

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
