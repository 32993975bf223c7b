"""Settings for production: everything secret or host-specific must be set.

Behind a TLS-terminating proxy by default: HTTPS only, HSTS, secure cookies, the
proxy's X-Forwarded-Proto trusted, and one cache (Redis) for every web process so
that the API's throttles hold across them. `manage.py check --deploy`
reports no issues with these settings.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import CLIPMATCH, MIDDLEWARE, REDIS_URL, env

DEBUG = False
# Refused here, at start-up, rather than by Django on the first signed cookie: an
# empty key would otherwise pass `check` and sign with "".
SECRET_KEY = env("DJANGO_SECRET_KEY", default="").strip()
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is empty: config.settings.production needs a long random "
        "key (python -c 'import secrets; print(secrets.token_urlsafe(50))')."
    )
ALLOWED_HOSTS = [h for h in env.list("DJANGO_ALLOWED_HOSTS", default=[]) if h]
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS is empty: config.settings.production needs the host "
        "names the site answers to, e.g. clipmatch.example.com."
    )

# Workers load the model as they start: the first listing is not slowed by it.
CLIPMATCH["PRELOAD_MODEL"] = env.bool("CLIPMATCH_PRELOAD_MODEL", default=True)

# --- HTTPS ------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Probes and the metrics scraper talk to the web server directly, in plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
# Only a proxy that sets X-Forwarded-Proto itself (and drops the client's) may be
# trusted with it; without a proxy, a client could claim HTTPS over plain HTTP.
if env.bool("DJANGO_TRUST_X_FORWARDED_PROTO", default=True):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
# The admin's and the API's session logins post forms over HTTPS from these hosts;
# ".example.com" in ALLOWED_HOSTS (any subdomain) is "*.example.com" here.
CSRF_TRUSTED_ORIGINS = [
    f"https://*{host}" if host.startswith(".") else f"https://{host}"
    for host in ALLOWED_HOSTS
    if host != "*"
]

# --- One cache for every process ----------------------------------------------------
# DRF's throttles count in the cache: a cache per process would let each web process
# grant the full rate. CACHE_URL wins over REDIS_URL (the broker's), e.g. to give
# the cache its own Redis database.
CACHE_URL = env("CACHE_URL", default="") or REDIS_URL
if not CACHE_URL:
    raise ImproperlyConfigured(
        "config.settings.production needs REDIS_URL (or CACHE_URL): the API's "
        "throttles must be counted in one cache shared by every web process."
    )
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": CACHE_URL,
        "KEY_PREFIX": "clipmatch",
        # A cache that is down must fail a request fast, not hang a web thread.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

# --- Static files ---------------------------------------------------------------------
# Served by the app itself (WhiteNoise), compressed and with hashed names cached for
# a year; `manage.py collectstatic` writes them to STATIC_ROOT.
# WhiteNoise right after SecurityMiddleware, as its documentation asks: static
# responses get the security headers and skip everything after.
_after = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1
MIDDLEWARE = [
    *MIDDLEWARE[:_after],
    "whitenoise.middleware.WhiteNoiseMiddleware",
    *MIDDLEWARE[_after:],
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
