"""Settings shared by every environment; values come from the environment."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    env.read_env(str(env_file))

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_q",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "clipmatch",
    "listings",
    "listings.webhooks",
]

MIDDLEWARE = [
    # First, so that every response carries the id and every request is logged.
    "config.middleware.RequestIdMiddleware",
    "listings.api.throttling.RateLimitHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Django's database sessions, refusing a cookie with a NUL byte before PostgreSQL does
# (with a 500).
SESSION_ENGINE = "listings.sessions"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

VAR_DIR = Path(env("CLIPMATCH_VAR_DIR", default=str(BASE_DIR / "var")))

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Workers and the web process write concurrently: IMMEDIATE takes the write lock
    # at BEGIN, so a transaction never fails halfway with "database is locked", and
    # WAL lets readers go on while one process writes.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("CLIPMATCH_MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Uploads larger than this are spooled to disk rather than held in memory; the size
# limit itself is CLIPMATCH["MAX_IMAGE_BYTES"] (and the proxy's body limit).
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Task queue -----------------------------------------------------------------
# timeout < retry: a task still running when "retry" elapses would be handed to a
# second worker. Attempts are finite. Workers hold a loaded model, so they are
# recycled rarely (the default of 500 tasks would reload the model that often).
REDIS_URL = env("REDIS_URL", default="")
Q_CLUSTER = {
    "name": env("Q_CLUSTER_NAME", default="clipmatch"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=120),
    "retry": env.int("Q_RETRY", default=300),
    "max_attempts": 2,
    "recycle": 20_000,
    "save_limit": 1000,
    "ack_failures": True,
    "catch_up": False,
    "poll": 0.5,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- CLIP scoring -----------------------------------------------------------------
# Read lazily through clipmatch.conf; nothing here loads a model. These are the only
# defaults (clipmatch.conf has none), so this dict holds every key: test.py edits
# CLIPMATCH["AUDIT_RATE"] in place, tests override with {**settings.CLIPMATCH, ...}
# and the test fixtures read settings.CLIPMATCH["MODEL"] and ["THRESHOLDS"] to hand
# to worker processes, and all of them see exactly what the app reads. Defaults kept
# in the reader instead would leave the dict partial and those reads stale or
# missing. The system checks (clipmatch.checks) validate every value.
CLIPMATCH = {
    # A hub id ("openai/clip-vit-base-patch32") or a local save_pretrained folder.
    "MODEL": env(
        "CLIPMATCH_MODEL", default=str(BASE_DIR / "clipmatch/bundled/clipmatch-mini")
    ),
    "DEVICE": env("CLIPMATCH_DEVICE", default="auto"),
    # fp32, bf16, fp16 (CUDA only) or auto: the fastest this machine runs natively
    # (bf16 on a CPU with bf16 instructions, bf16 or fp16 on a GPU, else fp32).
    "PRECISION": env("CLIPMATCH_PRECISION", default="auto"),
    # JSON like {"title": {"pass": 0.26, "hold": 0.19}, "description": {...}}; when
    # empty, the thresholds shipped in the model folder's clipmatch.json are used.
    "THRESHOLDS": env.json("CLIPMATCH_THRESHOLDS", default={}),
    "CATEGORY_TOP_K": env.int("CLIPMATCH_CATEGORY_TOP_K", default=0),
    "PROMPT_TEMPLATES": [
        "a photo of a {}.",
        "a product photo of a {}.",
        "a {} for sale.",
        "a close-up photo of the {}.",
    ],
    "AUDIT_RATE": env.float("CLIPMATCH_AUDIT_RATE", default=0.02),
    "BATCH_SIZE": env.int("CLIPMATCH_BATCH_SIZE", default=32),
    "TORCH_THREADS": env.int("CLIPMATCH_TORCH_THREADS", default=1),
    # Seconds a command waits for the Hugging Face hub to say what a hub id is;
    # web requests and workers never ask it (they read the local cache only).
    "HUB_TIMEOUT": env.float("CLIPMATCH_HUB_TIMEOUT", default=10.0),
    "MAX_IMAGE_PIXELS": env.int("CLIPMATCH_MAX_IMAGE_PIXELS", default=40_000_000),
    "MAX_IMAGE_BYTES": env.int("CLIPMATCH_MAX_IMAGE_BYTES", default=15 * 1024 * 1024),
    # The memory one image's decode may hold at its peak, estimated from its mode and
    # size before decoding: 40 megapixels of palette or RGBA fit; more is refused.
    "MAX_IMAGE_DECODE_BYTES": env.int(
        "CLIPMATCH_MAX_IMAGE_DECODE_BYTES", default=256 * 1024 * 1024
    ),
    "IMAGE_FORMATS": ["JPEG", "MPO", "PNG", "WEBP", "GIF"],
    "SCORING_MAX_ATTEMPTS": env.int("CLIPMATCH_SCORING_MAX_ATTEMPTS", default=3),
    # Pending listings one scoring task takes at once (its own and up to N-1 more).
    "SCORING_BATCH_LISTINGS": env.int("CLIPMATCH_SCORING_BATCH_LISTINGS", default=8),
    "SCORING_RETRY_BACKOFF": env.int("CLIPMATCH_SCORING_RETRY_BACKOFF", default=30),
    "SCORING_STALE_AFTER": env.int("CLIPMATCH_SCORING_STALE_AFTER", default=300),
    "RECONCILE_EVERY_MINUTES": env.int("CLIPMATCH_RECONCILE_EVERY_MINUTES", default=1),
    # The review queue: a claim lasts this long unless the page renews it.
    "REVIEW_LEASE_SECONDS": env.int("CLIPMATCH_REVIEW_LEASE_SECONDS", default=300),
    # Every this many hours of waiting multiplies an item's priority by e.
    "REVIEW_AGING_HOURS": env.float("CLIPMATCH_REVIEW_AGING_HOURS", default=24.0),
    # A skipped item stays out of that moderator's queue this long.
    "REVIEW_SKIP_COOLDOWN_SECONDS": env.int(
        "CLIPMATCH_REVIEW_SKIP_COOLDOWN_SECONDS", default=900
    ),
    # A moderator may take a decision back this long after making it (0: never).
    "REVIEW_UNDO_SECONDS": env.int("CLIPMATCH_REVIEW_UNDO_SECONDS", default=30),
    # Prices are shown in this currency (an ISO 4217 code); listings carry none.
    "CURRENCY": env.str("CLIPMATCH_CURRENCY", default="EUR"),
    # The reasons a moderator picks from when rejecting: [code, label] pairs; the
    # code is stored on the decision. "other" must be one of them, and needs a note.
    "REJECT_REASONS": [
        ["wrong_image", "Wrong image"],
        ["wrong_category", "Wrong category"],
        ["misleading_description", "Misleading description"],
        ["prohibited", "Prohibited item"],
        ["other", "Other (write a note)"],
    ],
    # Load the model in each worker process as it starts (after the fork), not on
    # its first task: the first listing is not slowed, and the load time is measured.
    "PRELOAD_MODEL": env.bool("CLIPMATCH_PRELOAD_MODEL", default=True),
    # /metrics answers a request with "Authorization: Bearer <token>" when a token
    # is set, and, when METRICS_ALLOW_PRIVATE is on, any request from a private or
    # loopback address; otherwise it is a 404.
    "METRICS_TOKEN": env("CLIPMATCH_METRICS_TOKEN", default=""),
    "METRICS_ALLOW_PRIVATE": env.bool("CLIPMATCH_METRICS_ALLOW_PRIVATE", default=False),
    # Reused photos: a new photo whose 64-bit perceptual hash is within
    # MAX_DISTANCE bits of a photo on another seller's live or recently removed
    # listing is the same photo when their image embeddings have at least
    # MIN_COSINE or their 256-bit hashes are within FINE_DISTANCE bits. Calibrated
    # for the bundled model by `python -m training.photo_reuse_eval` (README,
    # "Reused photos").
    "PHOTO_REUSE_MAX_DISTANCE": env.int(
        "CLIPMATCH_PHOTO_REUSE_MAX_DISTANCE", default=10
    ),
    "PHOTO_REUSE_MIN_COSINE": env.float(
        "CLIPMATCH_PHOTO_REUSE_MIN_COSINE", default=0.91
    ),
    "PHOTO_REUSE_FINE_DISTANCE": env.int(
        "CLIPMATCH_PHOTO_REUSE_FINE_DISTANCE", default=4
    ),
    # A listing deleted by its seller or rejected this many days ago or less still
    # counts: a photo lifted from it is still someone else's.
    "PHOTO_REUSE_RECENT_DAYS": env.int("CLIPMATCH_PHOTO_REUSE_RECENT_DAYS", default=90),
    # Photo quality: where each finding starts, measured on a 256x256 grey copy
    # (grey levels 0-255; sharpness is the variance of its Laplacian per 100 of its
    # own variance: a catalog photo scores about 30, one blurred by a 2-pixel
    # Gaussian 0.8), and for each whether it sends the listing to review
    # ("review") or is only said ("advise").
    "PHOTO_MIN_SIDE": env.int("CLIPMATCH_PHOTO_MIN_SIDE", default=160),
    "PHOTO_MIN_SHARPNESS": env.float("CLIPMATCH_PHOTO_MIN_SHARPNESS", default=1.5),
    "PHOTO_DARK_BELOW": env.float("CLIPMATCH_PHOTO_DARK_BELOW", default=40.0),
    "PHOTO_BRIGHT_ABOVE": env.float("CLIPMATCH_PHOTO_BRIGHT_ABOVE", default=235.0),
    "PHOTO_BLANK_CONTRAST_BELOW": env.float(
        "CLIPMATCH_PHOTO_BLANK_CONTRAST_BELOW", default=6.0
    ),
    "PHOTO_TOO_SMALL": env("CLIPMATCH_PHOTO_TOO_SMALL", default="advise"),
    "PHOTO_BLURRED": env("CLIPMATCH_PHOTO_BLURRED", default="advise"),
    "PHOTO_TOO_DARK": env("CLIPMATCH_PHOTO_TOO_DARK", default="advise"),
    "PHOTO_TOO_BRIGHT": env("CLIPMATCH_PHOTO_TOO_BRIGHT", default="advise"),
    "PHOTO_NEARLY_BLANK": env("CLIPMATCH_PHOTO_NEARLY_BLANK", default="advise"),
}

# --- REST API -------------------------------------------------------------------------
# DRF's own defaults are AllowAny and no throttling: here every view needs a login
# unless it says otherwise, and every client is throttled.
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes a missing login a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "listings.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        # DRF's own, reporting RateLimit-* headers.
        "listings.api.throttling.AnonRateThrottle",
        "listings.api.throttling.UserRateThrottle",
        "listings.api.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", default="60/hour"),
        "user": env("API_THROTTLE_USER", default="2000/hour"),
        "check": env("API_THROTTLE_CHECK", default="30/minute"),
    },
    "EXCEPTION_HANDLER": "listings.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "clipmatch API",
    "DESCRIPTION": (
        "Submit listings, read their CLIP checks, run pre-publish checks and "
        "receive verdicts by webhook. Every error has the shape "
        "{code, message, fields}."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from this server, not a CDN: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "WebhookEventEnum": "listings.webhooks.models.WebhookEndpoint.Event",
        "ListingStatusEnum": "listings.models.Listing.Status",
        "VerdictEnum": "listings.models.ListingScore.Verdict",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "listings.api.schema.add_error_responses",
        "listings.api.schema.add_links",
    ],
}
# Limits of what the API accepts; image bytes, pixels and types are CLIPMATCH's.
# The only defaults too, read through clipmatch.conf like CLIPMATCH.
CLIPMATCH_API = {
    "MAX_IMAGES_PER_LISTING": env.int("CLIPMATCH_API_MAX_IMAGES", default=8),
    "MAX_TITLE_LENGTH": env.int("CLIPMATCH_API_MAX_TITLE_LENGTH", default=200),
    "MAX_DESCRIPTION_LENGTH": env.int(
        "CLIPMATCH_API_MAX_DESCRIPTION_LENGTH", default=5000
    ),
    "MAX_WAIT_SECONDS": env.int("CLIPMATCH_API_MAX_WAIT", default=30),
    # How long an Idempotency-Key and its answer are kept (Stripe: 24 hours); an
    # hourly schedule deletes older ones.
    "IDEMPOTENCY_KEY_HOURS": env.int("CLIPMATCH_API_IDEMPOTENCY_KEY_HOURS", default=24),
    "WEBHOOK_MAX_ATTEMPTS": env.int("CLIPMATCH_WEBHOOK_MAX_ATTEMPTS", default=6),
    "WEBHOOK_RETRY_BACKOFF": env.int("CLIPMATCH_WEBHOOK_RETRY_BACKOFF", default=30),
    "WEBHOOK_TIMEOUT": env.int("CLIPMATCH_WEBHOOK_TIMEOUT", default=5),
    "WEBHOOK_SENDING_STALE_AFTER": env.int(
        "CLIPMATCH_WEBHOOK_STALE_AFTER", default=120
    ),
    # The django-q2 queue webhook tasks go to, served by `manage.py qcluster_webhooks`
    # alone, so that no amount of webhook traffic delays scoring.
    "WEBHOOK_QUEUE": env("CLIPMATCH_WEBHOOK_QUEUE", default="webhooks"),
    "WEBHOOK_MAX_ENDPOINTS": env.int("CLIPMATCH_WEBHOOK_MAX_ENDPOINTS", default=10),
    # Off in production: a webhook URL on a private or loopback address could reach
    # services behind the firewall. The tests' receiver runs on loopback.
    "WEBHOOK_ALLOW_PRIVATE_HOSTS": env.bool(
        "CLIPMATCH_WEBHOOK_ALLOW_PRIVATE_HOSTS", default=False
    ),
    # Set to an nginx internal location (e.g. "/protected-media/") to have the
    # proxy send the photos: the app checks who may see one and answers with
    # X-Accel-Redirect to that location plus the file's name under MEDIA_ROOT.
    "MEDIA_ACCEL_REDIRECT": env("CLIPMATCH_MEDIA_ACCEL_REDIRECT", default=""),
}

# Every line carries the request id (listings.observability): the X-Request-Id of
# the request, or of the request that queued the task being run.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
        },
        "json": {"()": "listings.observability.JsonFormatter"},
        "access": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        },
    },
    "filters": {
        "request_id": {"()": "listings.observability.RequestIdFilter"},
        # django-q2's INFO lines for each run of these scheduled tasks (every
        # minute, and the hourly purge, which runs as soon as a fresh cluster
        # starts) and of `manage.py serve`'s worker check become DEBUG; the tasks
        # log what they did when they did anything. The names are listings.tasks'/
        # webhooks' and the schedules' (RECONCILER, DISPATCHER, PURGER), written
        # out: settings import no app code.
        "routine_tasks": {
            "()": "listings.logs.RoutineTasksToDebug",
            "funcs": [
                "listings.tasks.reconcile_scoring",
                "listings.webhooks.tasks.dispatch_due_webhooks",
                "listings.tasks.purge_idempotency_keys",
                "listings.tasks.worker_check",
            ],
            "schedules": [
                "clipmatch: reconcile scoring",
                "clipmatch: dispatch due webhooks",
                "clipmatch: purge old idempotency keys",
            ],
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["request_id"],
        },
        "access": {"class": "logging.StreamHandler", "formatter": "access"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Through the root handler only: Django's own console handler for "django"
        # (DEBUG only) printed each of its lines a second time. No mail to ADMINS.
        "django": {"level": "INFO"},
        # runserver's access log, as Django has it (configuring "django" resets it).
        "django.server": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
        # A 4xx is the client's business (runserver's access line still shows it);
        # 5xx stay ERRORs, with their tracebacks.
        "django.request": {"level": "ERROR"},
        "django-q": {"filters": ["routine_tasks"]},
        # The one line per task (listings.observability), quiet for the same tasks.
        "clipmatch.task": {"filters": ["routine_tasks"]},
    },
}

LOGIN_URL = "admin:login"
