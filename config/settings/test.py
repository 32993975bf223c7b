"""Settings for the test suite."""

import uuid

from .base import *  # noqa: F403
from .base import CLIPMATCH, DATABASES, Q_CLUSTER, VAR_DIR, env

SECRET_KEY = "test-only-secret-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / "test-media"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a real qcluster subprocess sees the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

CLIPMATCH["AUDIT_RATE"] = 0.0
CLIPMATCH["TORCH_THREADS"] = env.int("CLIPMATCH_TORCH_THREADS", default=1)

# A queue of its own per run, so a test never meets another run's tasks in Redis.
Q_CLUSTER["name"] = env(
    "Q_CLUSTER_NAME", default=f"clipmatch-test-{uuid.uuid4().hex[:8]}"
)
Q_CLUSTER["workers"] = 1
