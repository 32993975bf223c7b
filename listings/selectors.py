"""Reads for listings: what to rescore, the review queue and its dashboard, the
evidence a moderator sees, and what the API lists. Moderators' decisions read as
labels are in listings.labels."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    Min,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from clipmatch import conf
from clipmatch.inference.photos import FINDING_LABELS
from clipmatch.services import ActiveModel
from listings.models import (
    Listing,
    ListingAppeal,
    ListingDecision,
    ListingImage,
    ListingScore,
    ReviewClaim,
    ScoringAttempt,
)

Status = Listing.Status


def listings_for_rescore(*, active: ActiveModel, stale_only: bool) -> QuerySet[Listing]:
    """System-routed listings; with stale_only, those scored by another model or
    other thresholds than the active ones, or never scored."""
    qs = Listing.objects.filter(
        status__in=[
            Listing.Status.PENDING,
            Listing.Status.PASSED,
            Listing.Status.REVIEW,
            Listing.Status.HELD,
        ]
    )
    if stale_only:
        if active.threshold_version is not None:
            other_thresholds = ~Q(score__threshold_version=active.threshold_version)
        else:
            other_thresholds = Q(score__threshold_version__isnull=False) | ~Q(
                score__thresholds=active.thresholds.as_dict()
            )
        qs = qs.filter(
            Q(score__isnull=True)
            | ~Q(score__model_version=active.version)
            | other_thresholds
            | ~Q(score__content_hash=F("content_hash"))
        )
    return qs.order_by("pk")


def review_states(moderator) -> list[str]:
    """The queue states this moderator works: escalations only for seniors."""
    states = [Status.HELD, Status.REVIEW, Status.APPEALED]
    if moderator.has_perm("listings.decide_escalated"):
        states.insert(0, Status.ESCALATED)
    return states


def review_queue(*, moderator, filters=None, now: datetime | None = None) -> QuerySet:
    """The items this moderator may claim now, most urgent first.

    Escalations (for seniors), then held listings, then the rest, each by expected
    harm (see services.priority.review_priority). Items held by someone else under
    a live lease, items this moderator skipped a moment ago, and appeals of their
    own rejections are left out.
    """
    now = now or timezone.now()
    states = review_states(moderator)
    # A listing its seller deleted is hidden everywhere, the queue included.
    # Nor does a moderator review their own listing.
    qs = Listing.objects.filter(status__in=states, deleted_at__isnull=True)
    qs = qs.exclude(seller=moderator).filter(
        Q(claimed_by__isnull=True) | Q(claimed_until__lt=now) | Q(claimed_by=moderator)
    )
    cooldown = timedelta(seconds=conf.get("REVIEW_SKIP_COOLDOWN_SECONDS"))
    skipped = ReviewClaim.objects.filter(
        moderator=moderator,
        outcome=ReviewClaim.Outcome.SKIPPED,
        ended_at__gte=now - cooldown,
    ).values("listing_id")
    own_rejections = ListingDecision.objects.filter(
        actor=moderator, to_status=Status.REJECTED
    ).values("listing_id")
    qs = qs.exclude(pk__in=skipped).exclude(
        Q(status=Status.APPEALED) & Q(pk__in=own_rejections)
    )
    if filters is not None:
        if filters.category:
            qs = qs.filter(category_id=filters.category)
        if filters.band:
            qs = qs.filter(score__verdict=filters.band)
        if filters.reason:
            qs = qs.filter(queue_reason=filters.reason)
        if filters.model_version:
            qs = qs.filter(score__model_version_id=filters.model_version)
        if filters.seller:
            qs = qs.filter(seller_id=filters.seller)
        if filters.text:
            qs = qs.filter(
                Q(title__icontains=filters.text)
                | Q(description__icontains=filters.text)
                | Q(seller__username__icontains=filters.text)
            )
    return qs.annotate(
        lane=Case(
            *(When(status=state, then=Value(i)) for i, state in enumerate(states)),
            output_field=IntegerField(),
        )
    ).order_by("lane", "-review_priority", "pk")


def review_harm(listing: Listing, now: datetime | None = None) -> float:
    """The expected harm now of a queue item, from its stored priority."""
    now = now or timezone.now()
    aging = conf.get("REVIEW_AGING_HOURS") * 3600
    return math.exp(min(listing.review_priority + now.timestamp() / aging, 700))


QUEUE_REASON_LABELS = {
    "scored_hold": "model holds it",
    "scored_review": "weak match",
    "audit_sample": "audit sample",
    "scoring_failed": "scoring failed",
    "escalated": "escalated",
    "appeal": "seller appealed",
    "edited_after_rejection": "changed after a rejection",
    "rescored": "rescored",
}


def queue_reason_label(code: str) -> str:
    return QUEUE_REASON_LABELS.get(code, code.replace("_", " "))


def review_queue_reasons() -> list[tuple[str, str]]:
    """The reasons items sit in the queue now, for the filter: (code, label)."""
    codes = (
        Listing.objects.exclude(queue_reason="")
        .order_by("queue_reason")
        .values_list("queue_reason", flat=True)
        .distinct()
    )
    return [(code, queue_reason_label(code)) for code in codes]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Dashboard:
    """The figures on the moderators' dashboard."""

    by_status: dict[str, int]
    queue_length: int
    oldest_waiting: datetime | None
    claimed_now: int
    per_moderator: list[tuple[str, list[int]]]
    days: list
    decision_minutes_median: float | None
    decision_minutes_p95: float | None
    decisions_timed: int
    overturns: list[dict]
    # Claim to decision, the moderator's own time: overall and per moderator.
    handling_seconds_median: float | None = None
    handling_per_moderator: list[tuple[str, float, int]] = field(default_factory=list)
    similarities: dict[str, list[float]] = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    model_version: str = ""
    # Listings not deleted with a photo reused from another seller, and photos
    # of such listings per quality finding.
    photos_reused: int = 0
    photo_findings: dict[str, int] = field(default_factory=dict)


def dashboard(*, days: int = 14, now: datetime | None = None) -> Dashboard:
    """Counts per status, the queue, moderators' throughput, time to decision,
    how often people overturned the model, and the latest scores' distribution."""
    now = now or timezone.now()
    by_status = dict(
        Listing.objects.values_list("status").annotate(n=Count("pk")).order_by()
    )
    queue = Listing.objects.filter(
        status__in=[Status.REVIEW, Status.HELD, Status.ESCALATED, Status.APPEALED]
    )
    oldest = queue.order_by("queued_for_review_at").first()
    human = ListingDecision.objects.exclude(actor=None).filter(
        to_status__in=[Status.APPROVED, Status.REJECTED, Status.ESCALATED]
    )
    since = (now - timedelta(days=days - 1)).date()
    # Newest first: today is the column a moderator looks for, and a narrow screen
    # shows the first columns.
    day_list = [since + timedelta(days=i) for i in reversed(range(days))]
    counts = (
        human.filter(created_at__date__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values_list("actor__username", "day")
        .annotate(n=Count("pk"))
        .order_by()
    )
    table: dict[str, dict] = defaultdict(dict)
    for username, day, n in counts:
        table[username][day] = n
    per_moderator = [
        (username, [table[username].get(day, 0) for day in day_list])
        for username in sorted(table)
    ]
    waits = [
        (created - queued).total_seconds() / 60
        for created, queued in human.filter(
            queued_at__isnull=False, created_at__gte=now - timedelta(days=days)
        ).values_list("created_at", "queued_at")
    ]
    overturns = _overturns(human)
    handled: dict[str, list[float]] = defaultdict(list)
    for username, claimed, ended in ReviewClaim.objects.filter(
        outcome=ReviewClaim.Outcome.DECIDED,
        ended_at__gte=now - timedelta(days=days),
    ).values_list("moderator__username", "claimed_at", "ended_at"):
        handled[username].append((ended - claimed).total_seconds())
    everyone = [seconds for times in handled.values() for seconds in times]
    latest = (
        ListingScore.objects.filter(pk__in=Listing.objects.values("score"))
        .select_related("model_version")
        .order_by("-computed_at")
    )
    newest = latest.first()
    similarities: dict[str, list[float]] = {}
    thresholds = {}
    if newest is not None:
        thresholds = newest.thresholds
        for verdict, similarity in latest.filter(
            model_version=newest.model_version, similarity__isnull=False
        ).values_list("verdict", "similarity"):
            similarities.setdefault(verdict, []).append(similarity)
    return Dashboard(
        by_status=by_status,
        queue_length=queue.count(),
        oldest_waiting=oldest.queued_for_review_at if oldest else None,
        claimed_now=queue.filter(claimed_until__gte=now).count(),
        per_moderator=per_moderator,
        days=day_list,
        decision_minutes_median=statistics.median(waits) if waits else None,
        decision_minutes_p95=_percentile(waits, 0.95),
        decisions_timed=len(waits),
        overturns=overturns,
        handling_seconds_median=statistics.median(everyone) if everyone else None,
        handling_per_moderator=[
            (name, statistics.median(times), len(times))
            for name, times in sorted(handled.items())
        ],
        similarities=similarities,
        thresholds=thresholds,
        model_version=str(newest.model_version) if newest else "",
        photos_reused=photo_reuse_count(),
        photo_findings=photo_finding_counts(),
    )


def photo_reuse_count() -> int:
    """Listings (not deleted) with a photo the same as another seller's."""
    return (
        Listing.objects.filter(
            deleted_at__isnull=True, images__reused_from__isnull=False
        )
        .distinct()
        .count()
    )


def photo_finding_counts() -> dict[str, int]:
    """Photos of listings not deleted, per quality finding (label: count)."""
    images = ListingImage.objects.filter(listing__deleted_at__isnull=True)
    counts = images.aggregate(
        **{
            code: Count("pk", filter=Q(quality_flags__contains=f" {code} "))
            for code in FINDING_LABELS
        }
    )
    return {FINDING_LABELS[code]: n for code, n in counts.items()}


def _overturns(human: QuerySet) -> list[dict]:
    """Per category: decisions, approvals of held and rejections of passed ones."""
    rows = human.filter(to_status__in=[Status.APPROVED, Status.REJECTED]).values_list(
        "listing__category__name", "to_status", "model_verdict"
    )
    total, approved_hold, rejected_pass = Counter(), Counter(), Counter()
    for category, to_status, verdict in rows:
        total[category] += 1
        if to_status == Status.APPROVED and verdict == ListingScore.Verdict.HOLD:
            approved_hold[category] += 1
        if to_status == Status.REJECTED and verdict == ListingScore.Verdict.PASS:
            rejected_pass[category] += 1
    return [
        {
            "category": category,
            "decisions": total[category],
            "approved_held": approved_hold[category],
            "rejected_passed": rejected_pass[category],
            "rate": (approved_hold[category] + rejected_pass[category])
            / total[category],
        }
        for category in sorted(total)
    ]


@dataclass(frozen=True)
class SellerSummary:
    """Who is behind a listing, for the moderator deciding it."""

    seller: object
    joined: datetime
    counts: dict[str, int]
    appeals: int
    others: list[Listing]
    total: int


def seller_summary(*, listing: Listing, limit: int = 8) -> SellerSummary:
    """The seller's record: how their listings fared, since when they sell, and
    their latest other listings."""
    seller = listing.seller
    theirs = Listing.objects.filter(seller=seller, deleted_at__isnull=True)
    by_status = {
        row["status"]: row["n"]
        for row in theirs.order_by().values("status").annotate(n=Count("id"))
    }
    counts = {
        "passed": by_status.get(Status.PASSED, 0) + by_status.get(Status.APPROVED, 0),
        "rejected": by_status.get(Status.REJECTED, 0),
        "in_review": sum(
            by_status.get(state, 0)
            for state in (Status.REVIEW, Status.HELD, Status.ESCALATED, Status.APPEALED)
        ),
    }
    others = list(
        theirs.exclude(pk=listing.pk)
        .select_related("category")
        .order_by("-created_at", "-id")[:limit]
    )
    return SellerSummary(
        seller=seller,
        joined=seller.date_joined,
        counts=counts,
        appeals=ListingAppeal.objects.filter(seller=seller).count(),
        others=others,
        total=sum(by_status.values()),
    )


# How much each band needs a person, and how the page says it in words.
BAND_SEVERITY = {"pass": 0, "review": 1, "hold": 2}
BAND_LABELS = {"pass": "passes", "review": "needs review", "hold": "mismatch"}


def _image_band(bands: dict[str, str], category_ok: bool) -> str:
    """One image's worst band over its fields; a wrong category asks for review."""
    found = list(bands.values()) + ([] if category_ok else ["review"])
    return max(found, key=BAND_SEVERITY.__getitem__, default="")


def _photo_evidence(rows: list[dict], by_index: dict[int, dict]) -> None:
    """Each row's photo signals from the score: quality findings in words, and
    the other seller's photo it reuses (fetched in one query), if any."""
    reused = {
        row["number"]: by_index[row["number"]]["reuse"]
        for row in rows
        if (by_index.get(row["number"]) or {}).get("reuse")
    }
    others = ListingImage.objects.select_related("listing__seller").in_bulk(
        [reuse["image_id"] for reuse in reused.values()]
    )
    for row in rows:
        seen = by_index.get(row["number"], {})
        row["quality"] = [FINDING_LABELS.get(c, c) for c in seen.get("quality", [])]
        reuse = reused.get(row["number"])
        row["reuse"] = (
            {
                **reuse,
                "first_seen": datetime.fromisoformat(reuse["first_seen"]),
                "image": others.get(reuse["image_id"]),
            }
            if reuse
            else None
        )


def review_evidence(listing: Listing) -> dict:
    """What a moderator needs to see about a listing, in display order."""
    score = listing.score
    images = list(listing.images.all())
    by_index = {row["index"]: row for row in (score.images if score else [])}
    rows = []
    for number, image in enumerate(images, start=1):
        seen = by_index.get(number, {})
        bands = seen.get("bands", {})
        band = _image_band(bands, seen.get("category_ok", True))
        rows.append(
            {
                "image": image,
                "number": number,
                "band": band,
                "band_label": BAND_LABELS.get(band, "not scored"),
                "lowest": min(
                    (
                        seen[name]
                        for name in ("title", "description")
                        if seen.get(name) is not None
                    ),
                    default=None,
                ),
                "fields": [
                    {
                        "name": name,
                        "similarity": seen.get(name),
                        "band": bands.get(name),
                    }
                    for name in ("title", "description")
                ],
                "categories": [
                    {**c, "listed": c["category"] == listing.category.name}
                    for c in seen.get("categories", [])
                ],
                "listed_rank": seen.get("listed_rank"),
                "category_ok": seen.get("category_ok", True),
            }
        )
    worst = min(
        rows,
        key=lambda row: (
            -BAND_SEVERITY.get(row["band"], -1),
            row["lowest"] if row["lowest"] is not None else math.inf,
            row["number"],
        ),
        default=None,
    )
    _photo_evidence(rows, by_index)
    decisions = list(listing.decisions.select_related("actor").order_by("-created_at"))
    appeal = listing.appeals.select_related("rejection__actor").first()
    return {
        "score": score,
        "images": rows,
        # The viewer opens on the photo that most needs a person's eyes.
        "worst_index": rows.index(worst) if worst else 0,
        "reasons": score.reasons if score else [],
        "thresholds": score.thresholds if score else {},
        "model_version": str(score.model_version) if score else "",
        "decisions": decisions,
        "appeal": appeal if listing.status == Status.APPEALED else None,
        "scoring_error": listing.scoring_error,
    }


def listings_visible_to(*, user) -> QuerySet[Listing]:
    """What a user may see through the API: moderators all, sellers their own,
    anyone else nothing; deleted listings never."""
    from listings.roles import is_moderator, is_seller

    qs = Listing.objects.filter(deleted_at__isnull=True)
    if is_moderator(user):
        pass
    elif is_seller(user):
        qs = qs.filter(seller=user)
    else:
        qs = qs.none()
    return qs.select_related(
        "category", "seller", "score", "score__model_version"
    ).prefetch_related("images")


def listing_history(*, listing: Listing, viewer) -> QuerySet[ListingDecision]:
    """A listing's decisions, oldest first. Moderators see the whole audit log;
    sellers do not see a decision that its moderator took back, nor the undo: a
    misclick undone in time never happened for them (while the window is open the
    decision shows, as the listing's status does)."""
    from listings.roles import is_moderator

    qs = listing.decisions.select_related("actor", "listing")
    if not is_moderator(viewer):
        qs = qs.filter(undoes__isnull=True, undone_by__isnull=True)
    return qs


def listing_list(
    *,
    user,
    status: str | None = None,
    band: str | None = None,
    category: str | None = None,
    updated_since=None,
) -> QuerySet[Listing]:
    """The listings a user may see, filtered; `band` is the last score's verdict and
    `category` a category's slug."""
    qs = listings_visible_to(user=user)
    if status:
        qs = qs.filter(status=status)
    if band:
        qs = qs.filter(score__verdict=band)
    if category:
        qs = qs.filter(category__slug=category)
    if updated_since is not None:
        qs = qs.filter(updated_at__gte=updated_since)
    return qs


def listing_status(*, listing_id: int) -> str | None:
    """The status in the database now (one small query; polled by ?wait=N)."""
    return (
        Listing.objects.filter(pk=listing_id).values_list("status", flat=True).first()
    )


@dataclass(frozen=True)
class OpsFigures:
    """What an on-call person reads off /metrics, as the database holds it now."""

    scores_by_verdict: dict[str, int]
    listings_by_status: dict[str, int]
    attempts_by_outcome: dict[str, int]
    quarantines: int
    decisions: dict[tuple[str, str], int]  # (to_status, "system" | "person")
    review_queue_length: int
    review_oldest_waiting: datetime | None
    webhook_deliveries_by_status: dict[str, int]


def ops_figures() -> OpsFigures:
    """Counts read at scrape time: the same figures whichever process asks, and
    across restarts, since every one of them is a row the services write anyway."""
    from listings.webhooks.models import WebhookDelivery

    def counts(qs, field):
        return dict(qs.values_list(field).annotate(n=Count("pk")).order_by(field))

    waiting = Listing.objects.filter(
        status__in=[Status.HELD, Status.REVIEW, Status.APPEALED, Status.ESCALATED],
        deleted_at__isnull=True,
    )
    oldest = waiting.filter(queued_for_review_at__isnull=False).aggregate(
        oldest=Min("queued_for_review_at")
    )["oldest"]
    decisions = {}
    for by, people in (("system", False), ("person", True)):
        rows = counts(
            ListingDecision.objects.filter(actor__isnull=not people), "to_status"
        )
        decisions.update({(to_status, by): n for to_status, n in rows.items()})
    return OpsFigures(
        scores_by_verdict=counts(ListingScore.objects.filter(shadow=False), "verdict"),
        listings_by_status=counts(Listing.objects.all(), "status"),
        attempts_by_outcome=counts(ScoringAttempt.objects.all(), "outcome"),
        quarantines=ListingDecision.objects.filter(
            reason_code="scoring_failed"
        ).count(),
        decisions=decisions,
        review_queue_length=waiting.count(),
        review_oldest_waiting=oldest,
        webhook_deliveries_by_status=counts(WebhookDelivery.objects.all(), "status"),
    )
