"""The two roles of the API, as Django groups: sellers and moderators."""

from __future__ import annotations

SELLERS = "Sellers"
MODERATORS = "Moderators"
SENIOR_MODERATORS = "Senior moderators"  # moderators who also decide escalations


def has_role(user, group: str) -> bool:
    if not user or not user.is_authenticated:
        return False
    # Cached on the user object: one query per request, however many checks.
    cache = getattr(user, "_clipmatch_groups", None)
    if cache is None:
        cache = set(user.groups.values_list("name", flat=True))
        user._clipmatch_groups = cache
    return group in cache


def is_seller(user) -> bool:
    return has_role(user, SELLERS)


def is_moderator(user) -> bool:
    return has_role(user, MODERATORS) or has_role(user, SENIOR_MODERATORS)


def actor_as_seen_by(decision, viewer) -> str:
    """Who made a decision, as the viewer may see it: moderators see names;
    sellers see "system", "seller" or "moderator", never a moderator's name."""
    if decision.actor_id is None:
        return "system"
    if is_moderator(viewer):
        return decision.actor.get_username()
    return "seller" if decision.actor_id == decision.listing.seller_id else "moderator"
