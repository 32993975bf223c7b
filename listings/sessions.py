"""The database session store, refusing a session key with a NUL byte as no
session at all: PostgreSQL rejects the lookup with a DataError, a 500 on every page
for a client that sent such a cookie."""

from __future__ import annotations

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore


class SessionStore(DatabaseSessionStore):
    def _validate_session_key(self, key):
        return super()._validate_session_key(key) and "\x00" not in key
