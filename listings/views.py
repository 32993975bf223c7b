"""The moderators' review queue: thin views over the review services."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_POST

from clipmatch import conf
from clipmatch.plots import bars_svg, bin_series, histogram_svg
from listings import selectors
from listings.forms import DecisionForm, QueueFilterForm
from listings.media import image_response
from listings.models import Listing, ListingImage
from listings.services.exceptions import (
    ClaimLost,
    DecisionNotAllowed,
    TransitionNotAllowed,
)
from listings.services.priority import mismatch_probability
from listings.services.review import (
    reject_reasons,
    review_claim,
    review_claim_next,
    review_decide,
    review_release,
    review_undo,
    seller_message_default,
)

FAVICON = Path(__file__).resolve().parent / "static" / "listings" / "favicon.ico"


def can_review(user) -> bool:
    return user.is_staff and user.has_perm("listings.moderate_listing")


def moderator_required(view):
    """Staff with the moderate_listing permission; others are sent to log in or
    refused."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not can_review(user):
            raise PermissionDenied("The review queue is for moderators.")
        return view(request, *args, **kwargs)

    return wrapped


def home(request):
    """The site's root (and the admin's "View site"): the review queue for those
    who can work it, the API's docs for everyone else."""
    return redirect("review:queue" if can_review(request.user) else "api-docs")


@cache_control(max_age=86400, public=True)
def favicon(request):
    # From here rather than /static/: runserver serves no static files without DEBUG.
    return FileResponse(FAVICON.open("rb"), content_type="image/x-icon")


def _filter_query(request) -> str:
    """The queue filters of this request, to carry from item to item."""
    keys = ("category", "band", "reason", "model_version", "seller", "q")
    kept = {k: request.GET.get(k) or request.POST.get(k) for k in keys}
    return urlencode({k: v for k, v in kept.items() if v})


def _with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


@moderator_required
def queue(request):
    form = QueueFilterForm(request.GET or None)
    waiting = selectors.review_queue(moderator=request.user, filters=form.filters())
    items = list(
        waiting.select_related("category", "score", "claimed_by", "seller")[:50]
    )
    now = timezone.now()
    for item in items:
        item.harm = selectors.review_harm(item, now)
        item.mismatch = mismatch_probability(score=item.score, reason=item.queue_reason)
        item.reason_label = selectors.queue_reason_label(item.queue_reason)
    return render(
        request,
        "review/queue.html",
        {
            "form": form,
            "items": items,
            "waiting": waiting.count(),
            "currency": conf.get("CURRENCY"),
            "seller_name": form.seller_name(),
            "query": _filter_query(request),
            "undo": _undo_offer(request),
        },
    )


@moderator_required
def next_item(request):
    form = QueueFilterForm(request.GET or None)
    listing = review_claim_next(moderator=request.user, filters=form.filters())
    if listing is None:
        messages.info(request, "The queue is empty. Nothing is waiting for you.")
        return redirect(_with_query(reverse("review:queue"), _filter_query(request)))
    return redirect(
        _with_query(reverse("review:item", args=[listing.pk]), _filter_query(request))
    )


@moderator_required
def item(request, pk: int):
    try:
        listing = review_claim(listing_id=pk, moderator=request.user)
    except ClaimLost as exc:
        messages.warning(request, str(exc))
        return redirect(_with_query(reverse("review:queue"), _filter_query(request)))
    evidence = selectors.review_evidence(listing)
    seller = selectors.seller_summary(listing=listing)
    return render(
        request,
        "review/item.html",
        {
            "listing": listing,
            "evidence": evidence,
            "seller": seller,
            "currency": conf.get("CURRENCY"),
            "reject_reasons": list(reject_reasons().items()),
            "query": _filter_query(request),
            "lease_seconds": conf.get("REVIEW_LEASE_SECONDS"),
            "mismatch": mismatch_probability(
                score=listing.score, reason=listing.queue_reason
            ),
            "may_escalate": listing.status != Listing.Status.ESCALATED,
            "undo": _undo_offer(request),
            "undo_seconds": conf.get("REVIEW_UNDO_SECONDS"),
            "seller_messages": {
                "approve": seller_message_default(action="approve"),
                "escalate": seller_message_default(action="escalate"),
                **{
                    code: seller_message_default(action="reject", reason_code=code)
                    for code in reject_reasons()
                },
            },
        },
    )


@require_POST
@moderator_required
def decide(request, pk: int):
    form = DecisionForm(request.POST)
    query = _filter_query(request)
    if not form.is_valid():
        messages.error(request, "The decision was incomplete; nothing was changed.")
        return redirect(_with_query(reverse("review:item", args=[pk]), query))
    data = form.cleaned_data
    try:
        decision = review_decide(
            listing_id=pk,
            moderator=request.user,
            action=data["action"],
            reason_code=data["reason_code"],
            note=data["note"],
            message=data["message"],
            expected_status=data["expected_status"],
            expected_content_hash=data["expected_content_hash"],
        )
    except ValueError as exc:
        messages.error(request, str(exc))
        return redirect(_with_query(reverse("review:item", args=[pk]), query))
    except (TransitionNotAllowed, DecisionNotAllowed) as exc:
        review_release(listing_id=pk, moderator=request.user, skipped=False)
        messages.error(request, str(exc))
        return redirect(_with_query(reverse("review:next"), query))
    messages.success(
        request,
        f"{decision.get_to_status_display()}: “{decision.listing.title}”.",
    )
    _offer_undo(request, decision)
    return redirect(_with_query(reverse("review:next"), query))


UNDO_KEY = "review_undo"


def _offer_undo(request, decision) -> None:
    """Remember the moderator's last decision for the pages that follow, which
    offer to take it back while the window is open."""
    window = conf.get("REVIEW_UNDO_SECONDS")
    if not window:
        return
    request.session[UNDO_KEY] = {
        "decision": decision.pk,
        "title": decision.listing.title,
        "status": decision.get_to_status_display(),
        "until": (decision.created_at + timedelta(seconds=window)).isoformat(),
    }


def _undo_offer(request) -> dict | None:
    offer = request.session.get(UNDO_KEY)
    if offer and datetime.fromisoformat(offer["until"]) > timezone.now():
        return offer
    request.session.pop(UNDO_KEY, None)
    return None


@require_POST
@moderator_required
def undo(request, decision_id: int):
    request.session.pop(UNDO_KEY, None)
    try:
        done = review_undo(decision_id=decision_id, moderator=request.user)
    except TransitionNotAllowed as exc:
        messages.error(request, str(exc))
        return redirect(_with_query(reverse("review:next"), _filter_query(request)))
    messages.success(
        request,
        f"Undone: “{done.listing.title}” is {done.get_to_status_display().lower()} "
        "again. Decide it afresh.",
    )
    return redirect(
        _with_query(
            reverse("review:item", args=[done.listing_id]), _filter_query(request)
        )
    )


@require_POST
@moderator_required
def skip(request, pk: int):
    review_release(listing_id=pk, moderator=request.user, skipped=True)
    return redirect(_with_query(reverse("review:next"), _filter_query(request)))


@require_POST
@moderator_required
def renew(request, pk: int):
    try:
        listing = review_claim(listing_id=pk, moderator=request.user)
    except ClaimLost as exc:
        return JsonResponse({"claimed": False, "message": str(exc)}, status=409)
    return JsonResponse(
        {"claimed": True, "claimed_until": listing.claimed_until.isoformat()}
    )


@moderator_required
def image(request, pk: int):
    """A listing's photo for moderators."""
    return image_response(get_object_or_404(ListingImage, pk=pk))


@moderator_required
def dashboard(request):
    data = selectors.dashboard()
    thresholds = data.thresholds.get("title", {})
    cuts = {k: thresholds[k] for k in ("hold", "pass") if k in thresholds}
    counts, edges = bin_series(
        {
            band: data.similarities[band]
            for band in ("pass", "review", "hold")
            if data.similarities.get(band)
        },
        extra=tuple(cuts.values()),
    )
    histogram = histogram_svg(
        counts, edges, lines=cuts, x_label="lowest image-title similarity"
    )
    overturn_chart = bars_svg(
        [(row["category"], row["rate"]) for row in data.overturns]
    )
    oldest_hours = None
    if data.oldest_waiting:
        oldest_hours = (timezone.now() - data.oldest_waiting).total_seconds() / 3600
    return render(
        request,
        "review/dashboard.html",
        {
            "data": data,
            "statuses": [
                (label, data.by_status.get(value, 0))
                for value, label in Listing.Status.choices
            ],
            "histogram": histogram,
            "overturn_chart": overturn_chart,
            "oldest_hours": oldest_hours,
        },
    )
