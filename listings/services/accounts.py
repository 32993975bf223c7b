"""Sellers and API tokens."""

from __future__ import annotations

from django.db import transaction

SELLER_PERMISSIONS = ["add_listing", "change_listing", "delete_listing", "view_listing"]


def seller_ensure(*, username: str, password: str | None = None):
    """Create (or find) a user in the Sellers group; with a password, set it."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group, Permission

    from listings.roles import SELLERS

    group, _ = Group.objects.get_or_create(name=SELLERS)
    group.permissions.set(
        Permission.objects.filter(
            content_type__app_label="listings", codename__in=SELLER_PERMISSIONS
        )
    )
    user, _ = get_user_model().objects.get_or_create(username=username)
    if password:
        user.set_password(password)
        user.save(update_fields=["password"])
    user.groups.add(group)
    return user


def api_token_issue(*, user, reset: bool = False) -> str:
    """The user's API token, created when missing; `reset` replaces it."""
    from rest_framework.authtoken.models import Token

    with transaction.atomic():
        if reset:
            Token.objects.filter(user=user).delete()
        token, _ = Token.objects.get_or_create(user=user)
    return token.key
