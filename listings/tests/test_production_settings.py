"""config.settings.production: refuses to start half-configured, and passes
`check --deploy` with nothing to report."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.conf import settings


def production_env(**overrides) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CACHE_URL", "CLIPMATCH_METRICS"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "clipmatch.example.com",
            "REDIS_URL": "redis://127.0.0.1:1/0",  # never contacted by these
            "DATABASE_URL": "sqlite:////nonexistent/never-opened.sqlite3",
        }
    )
    env.update(overrides)
    return env


def _run(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _load(env) -> subprocess.CompletedProcess:
    return _run("-c", "import config.settings.production", env=env)


def test_check_deploy_finds_no_issues():
    done = _run(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env=production_env(),
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "System check identified no issues (0 silenced)."


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DJANGO_SECRET_KEY": "  "}, "DJANGO_SECRET_KEY is empty"),
        ({"DJANGO_ALLOWED_HOSTS": ""}, "DJANGO_ALLOWED_HOSTS is empty"),
        (
            {"REDIS_URL": ""},
            "config.settings.production needs REDIS_URL (or CACHE_URL)",
        ),
    ],
)
def test_a_missing_secret_host_list_or_cache_stops_the_start(overrides, message):
    done = _load(production_env(**overrides))

    assert done.returncode == 1
    assert f"ImproperlyConfigured: {message}" in done.stderr


def test_the_cache_is_the_shared_redis_and_cache_url_wins_over_redis_url():
    code = (
        "import config.settings.production as s; "
        "print(s.CACHES['default']['BACKEND'], s.CACHES['default']['LOCATION'])"
    )
    plain = _run("-c", code, env=production_env())
    own = _run("-c", code, env=production_env(CACHE_URL="redis://cache:6379/3"))

    redis = "django.core.cache.backends.redis.RedisCache"
    assert plain.stdout.split() == [redis, "redis://127.0.0.1:1/0"]
    assert own.stdout.split() == [redis, "redis://cache:6379/3"]


def test_without_a_trusted_proxy_x_forwarded_proto_is_not_believed():
    code = (
        "import config.settings.production as s; "
        "print(getattr(s, 'SECURE_PROXY_SSL_HEADER', None))"
    )
    trusted = _run("-c", code, env=production_env())
    direct = _run("-c", code, env=production_env(DJANGO_TRUST_X_FORWARDED_PROTO="0"))

    assert trusted.stdout.strip() == "('HTTP_X_FORWARDED_PROTO', 'https')"
    assert direct.stdout.strip() == "None"
