"""Settings for the test suite."""
from .base import *  # noqa: F403
from .base import CLIPMATCH, DATABASES, VAR_DIR, env

SECRET_KEY = "test-only-secret-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / "test-media"

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a real qcluster subprocess sees the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

CLIPMATCH["AUDIT_RATE"] = 0.0
CLIPMATCH["TORCH_THREADS"] = env.int("CLIPMATCH_TORCH_THREADS", default=1)
