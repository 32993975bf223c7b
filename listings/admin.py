"""Admin for moderators: listings with their score, reasons, images and history."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from listings.models import (
    Category,
    Listing,
    ListingDecision,
    ListingImage,
    ListingScore,
    ScoringAttempt,
)

BADGE_COLOURS = {
    "pass": "#1a7f37",
    "review": "#9a6700",
    "hold": "#cf222e",
    "failed": "#6e7781",
}


def badge(verdict: str, label: str) -> str:
    return format_html(
        '<span style="background:{};color:#fff;padding:2px 6px;border-radius:8px;'
        'font-size:11px;white-space:nowrap">{}</span>',
        BADGE_COLOURS.get(verdict, "#6e7781"),
        label,
    )


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "active"]
    list_filter = ["active"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


class ListingImageInline(admin.TabularInline):
    model = ListingImage
    extra = 0
    fields = ["preview", "image", "position", "content_hash"]
    readonly_fields = ["preview", "content_hash"]

    @admin.display(description="Preview")
    def preview(self, obj: ListingImage) -> str:
        if not obj.pk or not obj.image:
            return "-"
        return format_html(
            '<a href="{0}" target="_blank"><img src="{0}" style="max-height:240px;'
            'max-width:320px;border-radius:4px"></a>',
            obj.image.url,
        )


class ListingDecisionInline(admin.TabularInline):
    model = ListingDecision
    extra = 0
    can_delete = False
    fields = [
        "created_at",
        "who",
        "from_status",
        "to_status",
        "reason_code",
        "reason",
        "model_version",
        "score",
    ]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    @admin.display(description="Who")
    def who(self, obj: ListingDecision) -> str:
        return obj.actor_label

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ScoringAttemptInline(admin.TabularInline):
    model = ScoringAttempt
    extra = 0
    can_delete = False
    fields = ["started_at", "finished_at", "outcome", "error", "retry_after", "worker"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Listing)
class ListingAdmin(admin.ModelAdmin):
    list_display = [
        "title",
        "seller",
        "category",
        "price",
        "status_badge",
        "similarity",
        "model_version",
        "updated_at",
    ]
    list_filter = ["status", "category", "score__model_version"]
    list_select_related = ["seller", "category", "score__model_version"]
    search_fields = ["title", "seller__username"]
    inlines = [ListingImageInline, ListingDecisionInline, ScoringAttemptInline]
    check_fields = [
        "status",
        "verdict",
        "reasons",
        "evidence",
        "scoring_error",
        "model_version",
        "thresholds",
        "computed_at",
        "content_hash",
    ]
    readonly_fields = [*check_fields, "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["seller", "title", "description", "category", "price"]}),
        ("CLIP check", {"fields": check_fields}),
        ("Dates", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Listing) -> str:
        verdict = {
            "passed": "pass",
            "approved": "pass",
            "held": "hold",
            "rejected": "hold",
            "review": "review",
        }.get(obj.status, "failed")
        return badge(verdict, obj.get_status_display())

    @admin.display(description="Similarity", ordering="score__similarity")
    def similarity(self, obj: Listing) -> str:
        if obj.score is None or obj.score.similarity is None:
            return "-"
        return f"{obj.score.similarity:.3f}"

    @admin.display(description="Model version")
    def model_version(self, obj: Listing) -> str:
        return str(obj.score.model_version) if obj.score else "-"

    @admin.display(description="Verdict")
    def verdict(self, obj: Listing) -> str:
        if obj.score is None:
            return "Not scored yet"
        label = obj.score.get_verdict_display()
        if obj.score.audit_sample:
            label += " (audit sample)"
        return badge(obj.score.verdict, label)

    @admin.display(description="Reasons")
    def reasons(self, obj: Listing) -> str:
        if obj.score is None:
            return "-"
        return format_html(
            "<ul style='margin:0'>{}</ul>",
            format_html_join(
                "", "<li>{}</li>", ((reason,) for reason in obj.score.reasons)
            ),
        )

    @admin.display(description="Per image")
    def evidence(self, obj: Listing) -> str:
        if obj.score is None:
            return "-"
        rows = []
        for image in obj.score.images:
            seen = ", ".join(
                f"{c['category']} {c['similarity']:.3f}" for c in image["categories"]
            )
            description = image.get("description")
            rows.append(
                (
                    image["index"],
                    f"{image['title']:.3f}",
                    "-" if description is None else f"{description:.3f}",
                    seen,
                    image.get("listed_rank") or "-",
                )
            )
        return format_html(
            "<table><tr><th>Image</th><th>Title</th><th>Description</th>"
            "<th>Looks like</th><th>Listed category rank</th></tr>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                rows,
            ),
        )

    @admin.display(description="Thresholds")
    def thresholds(self, obj: Listing) -> str:
        return obj.score.thresholds if obj.score else "-"

    @admin.display(description="Scored at")
    def computed_at(self, obj: Listing):
        return obj.score.computed_at if obj.score else "-"


@admin.register(ListingScore)
class ListingScoreAdmin(admin.ModelAdmin):
    list_display = [
        "listing",
        "verdict",
        "similarity",
        "model_version",
        "audit_sample",
        "computed_at",
    ]
    list_filter = ["verdict", "model_version", "audit_sample"]
    list_select_related = ["listing", "model_version"]
    readonly_fields = [f.name for f in ListingScore._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
