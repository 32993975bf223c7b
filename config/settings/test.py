"""Settings for the test suite."""

import tempfile
import uuid
from pathlib import Path

from .base import *  # noqa: F403
from .base import CLIPMATCH, DATABASES, Q_CLUSTER, VAR_DIR, env

SECRET_KEY = "test-only-secret-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# A fresh folder per run; worker processes started by the tests are handed the same.
MEDIA_ROOT = Path(
    env(
        "CLIPMATCH_TEST_MEDIA_ROOT", default=tempfile.mkdtemp(prefix="clipmatch-media-")
    )
)

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a real qcluster subprocess sees the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

CLIPMATCH["AUDIT_RATE"] = 0.0
CLIPMATCH["TORCH_THREADS"] = env.int("CLIPMATCH_TORCH_THREADS", default=1)
# Exact figures in the tests must not depend on the CPU the suite runs on ("auto" is
# bf16 on some, fp32 on others); the precision tests set bf16 themselves.
CLIPMATCH["PRECISION"] = env("CLIPMATCH_PRECISION", default="fp32")

# A queue of its own per run, so a test never meets another run's tasks in Redis.
Q_CLUSTER["name"] = env(
    "Q_CLUSTER_NAME", default=f"clipmatch-test-{uuid.uuid4().hex[:8]}"
)
# One worker unless a test starts a cluster of more (the chaos test).
Q_CLUSTER["workers"] = env.int("Q_WORKERS", default=1)

# The suite's photos are tiny, nearly plain PNGs: the photo quality findings would
# advise on every one of them. Off here (nothing is below 0 or above 255, nothing
# is smaller than 1 pixel, and a 0 sharpness or contrast limit is off); the tests
# of the findings set the defaults back.
PHOTO_QUALITY_DEFAULTS = {
    key: CLIPMATCH[key]
    for key in (
        "PHOTO_MIN_SIDE",
        "PHOTO_MIN_SHARPNESS",
        "PHOTO_DARK_BELOW",
        "PHOTO_BRIGHT_ABOVE",
        "PHOTO_BLANK_CONTRAST_BELOW",
    )
}
CLIPMATCH["PHOTO_MIN_SIDE"] = 1
CLIPMATCH["PHOTO_MIN_SHARPNESS"] = 0.0
CLIPMATCH["PHOTO_DARK_BELOW"] = 0.0
CLIPMATCH["PHOTO_BRIGHT_ABOVE"] = 255.0
CLIPMATCH["PHOTO_BLANK_CONTRAST_BELOW"] = 0.0
