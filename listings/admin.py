"""Admin for moderators: listings with their score, reasons, images and history."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from clipmatch.inference.photos import FINDING_LABELS
from listings.models import (
    Category,
    Listing,
    ListingDecision,
    ListingImage,
    ListingScore,
    ScoringAttempt,
)
from listings.services.exceptions import DecisionNotAllowed, TransitionNotAllowed
from listings.services.rescoring import listings_queue_rescore
from listings.services.review import (
    reject_reasons,
    review_decide,
    review_decide_bulk,
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


def thresholds_table(thresholds: dict) -> str:
    """Thresholds as a table: one row per field, its hold and pass cuts."""
    rows = [
        (name, f"{cuts.get('hold', 0):.3f}", f"{cuts.get('pass', 0):.3f}")
        for name, cuts in thresholds.items()
        if isinstance(cuts, dict)
    ]
    extra = format_html_join(
        "",
        "<tr><td>{}</td><td colspan='2'>{}</td></tr>",
        ((k, v) for k, v in thresholds.items() if not isinstance(v, dict)),
    )
    return format_html(
        "<table><tr><th>Field</th><th>Held below</th><th>Passes from</th></tr>"
        "{}{}</table>",
        format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        extra,
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
    fields = ["preview", "image", "position", "content_hash", "photo_checks"]
    readonly_fields = ["preview", "content_hash", "photo_checks"]

    @admin.display(description="Photo checks")
    def photo_checks(self, obj: ListingImage) -> str:
        if not obj.pk or obj.signals_at is None:
            return "-"
        parts = [FINDING_LABELS[c] for c in obj.quality.get("findings", [])]
        if obj.reuse:
            url = reverse(
                "admin:listings_listing_change", args=[obj.reuse["listing_id"]]
            )
            return format_html(
                '{}<a href="{}">same photo as listing #{}</a>',
                f"{', '.join(parts)}; " if parts else "",
                url,
                obj.reuse["listing_id"],
            )
        return ", ".join(parts) or "ok"

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
        "seller_message",
        "model_version",
        "rounded_score",
    ]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor")

    @admin.display(description="Who")
    def who(self, obj: ListingDecision) -> str:
        return obj.actor_label

    @admin.display(description="Score")
    def rounded_score(self, obj: ListingDecision) -> str:
        return "-" if obj.score is None else f"{obj.score:.3f}"

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


class BandFilter(admin.SimpleListFilter):
    title = "model band"
    parameter_name = "band"

    def lookups(self, request, model_admin):
        return [*ListingScore.Verdict.choices, ("none", "Not scored")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(score__isnull=True)
        if self.value():
            return queryset.filter(score__verdict=self.value())
        return queryset


class PhotoReuseFilter(admin.SimpleListFilter):
    title = "photo reused from another seller"
    parameter_name = "photo_reused"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        reused = ListingImage.objects.filter(reused_from__isnull=False).values(
            "listing_id"
        )
        if self.value() == "yes":
            return queryset.filter(pk__in=reused)
        if self.value() == "no":
            return queryset.exclude(pk__in=reused)
        return queryset


class PhotoQualityFilter(admin.SimpleListFilter):
    title = "photo quality"
    parameter_name = "photo_quality"

    def lookups(self, request, model_admin):
        return list(FINDING_LABELS.items())

    def queryset(self, request, queryset):
        if self.value() not in FINDING_LABELS:
            return queryset
        flagged = ListingImage.objects.filter(
            quality_flags__contains=f" {self.value()} "
        ).values("listing_id")
        return queryset.filter(pk__in=flagged)


class ScoredAgoFilter(admin.SimpleListFilter):
    title = "scored"
    parameter_name = "scored_days_ago"

    def lookups(self, request, model_admin):
        return [(str(d), f"more than {d} days ago") for d in (1, 7, 30, 90)]

    def queryset(self, request, queryset):
        if not (self.value() or "").isdigit():
            return queryset
        cutoff = timezone.now() - timedelta(days=int(self.value()))
        return queryset.filter(score__computed_at__lt=cutoff)


@admin.register(Listing)
class ListingAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "title",
        "seller",
        "category",
        "price",
        "status_badge",
        "similarity",
        "model_version",
        "updated_at",
    ]
    list_display_links = ["thumbnail", "title"]
    list_filter = [
        "status",
        BandFilter,
        "category",
        "score__model_version",
        ScoredAgoFilter,
        PhotoReuseFilter,
        PhotoQualityFilter,
    ]
    list_select_related = ["seller", "category", "score__model_version"]
    search_fields = ["title", "seller__username"]
    inlines = [ListingImageInline, ListingDecisionInline, ScoringAttemptInline]
    actions = ["approve_selected", "reject_selected", "rescore_selected"]

    def get_queryset(self, request):
        first_image = ListingImage.objects.order_by("position", "id")
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("images", queryset=first_image))
        )

    @admin.display(description="")
    def thumbnail(self, obj: Listing) -> str:
        images = obj.images.all()
        if not images:
            return "-"
        return format_html(
            '<img src="{}" alt="" style="width:56px;height:56px;object-fit:cover;'
            'border-radius:4px">',
            reverse("review:image", args=[images[0].pk]),
        )

    def _report(self, request, decided, refused, verb: str) -> None:
        if decided:
            self.message_user(request, f"{verb} {len(decided)} listing(s).")
        for listing_id, why in refused.items():
            self.message_user(
                request, f"Listing {listing_id} not changed: {why}", messages.WARNING
            )

    @admin.action(description="Approve selected listings", permissions=["moderate"])
    def approve_selected(self, request, queryset):
        decided, refused = review_decide_bulk(
            listing_ids=list(queryset.values_list("pk", flat=True)),
            moderator=request.user,
            action="approve",
        )
        self._report(request, decided, refused, "Approved")

    @admin.action(description="Reject selected listings…", permissions=["moderate"])
    def reject_selected(self, request, queryset):
        reasons = reject_reasons()
        if "apply" in request.POST:
            try:
                decided, refused = review_decide_bulk(
                    listing_ids=list(queryset.values_list("pk", flat=True)),
                    moderator=request.user,
                    action="reject",
                    reason_code=request.POST.get("reason_code", ""),
                    note=request.POST.get("note", ""),
                )
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            self._report(request, decided, refused, "Rejected")
            return None
        return TemplateResponse(
            request,
            "admin/listings/listing/reject_selected.html",
            {
                **self.admin_site.each_context(request),
                "title": "Reject listings",
                "opts": self.model._meta,
                "listings": queryset,
                "reasons": reasons.items(),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(
        description="Rescore selected listings with the active model",
        permissions=["moderate"],
    )
    def rescore_selected(self, request, queryset):
        listing_ids = list(queryset.values_list("pk", flat=True))
        listings_queue_rescore(listing_ids=listing_ids)
        self.message_user(
            request,
            f"Queued {len(listing_ids)} listing(s) for rescoring with the active "
            "model; approved and rejected ones keep their human decision.",
        )

    def has_moderate_permission(self, request) -> bool:
        return request.user.has_perm("listings.moderate_listing")

    # What the seller wrote is theirs: moderators decide on it, not edit it.
    seller_content = ["seller", "title", "description", "category", "price"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and not request.user.is_superuser:
            fields += self.seller_content
        return fields

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "POST" and "_decide" in request.POST:
            return self._decide(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "reject_reasons": reject_reasons().items(),
            "may_decide": self.has_moderate_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _decide(self, request, object_id):
        """The decide buttons of the change page: one review_decide, as in the
        queue, on the status and content the page showed."""
        url = reverse("admin:listings_listing_change", args=[object_id])
        if not self.has_moderate_permission(request):
            raise PermissionDenied
        try:
            decision = review_decide(
                listing_id=int(object_id),
                moderator=request.user,
                action=request.POST["_decide"],
                expected_status=request.POST.get("expected_status", ""),
                expected_content_hash=request.POST.get("expected_content_hash", ""),
                reason_code=request.POST.get("decide_reason_code", ""),
                note=request.POST.get("decide_note", ""),
                message=request.POST.get("decide_message", ""),
            )
        except (ValueError, TransitionNotAllowed, DecisionNotAllowed) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(url)
        self.message_user(
            request, f"{decision.get_to_status_display()}: “{decision.listing}”."
        )
        return HttpResponseRedirect(url)

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
        return thresholds_table(obj.score.thresholds) if obj.score else "-"

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


# The model-version pages, with the catalog's shadow comparison (see the module).
from listings import model_version_admin  # noqa: E402, F401
