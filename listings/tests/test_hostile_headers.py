"""Malformed credentials are refused as credentials, never a server error, on
either database (PostgreSQL cannot compare a NUL byte and says so loudly)."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/v1/listings/", 401), ("/review/", 302), ("/admin/", 302)],
)
def test_a_nul_byte_in_the_token_header_is_refused_not_a_500(path, status):
    response = Client().get(path, HTTP_AUTHORIZATION="Token a\x00b")

    assert response.status_code == status
    if status == 401:
        assert response.json()["message"] == "Invalid token."


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/v1/listings/", 401), ("/review/", 302), ("/admin/", 302)],
)
def test_a_nul_byte_in_the_session_cookie_is_no_session_not_a_500(path, status):
    response = Client().get(path, HTTP_COOKIE="sessionid=abcdefgh\x00ijklmnop")

    assert response.status_code == status


def test_a_session_key_with_a_nul_byte_is_refused_before_the_database():
    from listings.sessions import SessionStore

    assert SessionStore("abcdefgh\x00ijklmnop").session_key is None
    assert SessionStore("abcdefghijklmnop").session_key == "abcdefghijklmnop"
