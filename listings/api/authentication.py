"""Token authentication that refuses a malformed key before it reaches the
database: PostgreSQL cannot store or compare a NUL byte, and psycopg's DataError
turned `Authorization: Token a\\x00b` into a 500 for an anonymous client."""

from __future__ import annotations

from drf_spectacular.authentication import TokenScheme
from rest_framework import authentication, exceptions


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key):
        if "\x00" in key:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return super().authenticate_credentials(key)


class TokenAuthenticationScheme(TokenScheme):
    """The OpenAPI security scheme for it: drf-spectacular's own matches DRF's
    class only, not a subclass."""

    target_class = "listings.api.authentication.TokenAuthentication"
