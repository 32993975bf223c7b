"""The production stack, as `make prod` runs it: gunicorn (2 workers) with the
production settings, PostgreSQL, a Redis of this test's own and a qcluster.

A seller creates a listing through the API and the worker routes it; static files
load; the photo is served to its seller only; /check/'s throttle holds across both
web processes; /metrics shows the verdict; /readyz turns 503 when Redis stops.
"""

from __future__ import annotations

import io
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.utils.text import slugify

from conftest import BUNDLED_MODEL, database_url
from listings.tests.conftest import metric_sample

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

METRICS_TOKEN = secrets.token_urlsafe(24)
# What the proxy in front would add: the production settings redirect plain HTTP.
VIA_PROXY = {"X-Forwarded-Proto": "https"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(predicate, *, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # not listening yet: refused, reset, or a Redis error
            pass
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"{what} did not come up within {timeout}s.\n{tail}")


def _stop(process: subprocess.Popen, grace: float = 10) -> None:
    """Stop a process group started here (gunicorn, Redis) unless it has ended."""
    from listings.workers import qcluster_stop

    if process.poll() is None:
        qcluster_stop(process, grace=grace)


@pytest.fixture
def own_redis(tmp_path):
    """A Redis for this test alone, on a free port, so that it can be stopped."""
    import redis

    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        + ["--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    _wait_for(lambda: redis.from_url(url).ping(), timeout=15, what="Redis")
    process.url = url
    yield process
    _stop(process)


@pytest.fixture
def stack(own_redis, tmp_path):
    """gunicorn and a qcluster on the production settings and the test database."""
    if connection.vendor != "postgresql":
        pytest.skip("the production stack runs on PostgreSQL (DATABASE_URL)")
    from listings.workers import qcluster_start, qcluster_stop

    port = _free_port()
    (tmp_path / "prometheus").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url(connection.settings_dict),
            "REDIS_URL": own_redis.url,
            "Q_CLUSTER_NAME": f"prod-test-{secrets.token_hex(4)}",
            "Q_WORKERS": "1",
            "CLIPMATCH_VAR_DIR": str(tmp_path / "var"),
            "CLIPMATCH_MEDIA_ROOT": str(tmp_path / "media"),
            "CLIPMATCH_MODEL": str(BUNDLED_MODEL),
            "CLIPMATCH_METRICS_TOKEN": METRICS_TOKEN,
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "GUNICORN_WORKERS": "2",
            "GUNICORN_ACCESS_LOG": str(tmp_path / "access.log"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("CLIPMATCH_THRESHOLDS", None)
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
    deploy = subprocess.run(
        [*manage, "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert deploy.returncode == 0, deploy.stderr
    assert deploy.stdout.strip() == "System check identified no issues (0 silenced)."
    subprocess.run(
        [*manage, "collectstatic", "--noinput", "-v0"], env=env, check=True, timeout=120
    )

    web_log = tmp_path / "gunicorn.log"
    worker_log = tmp_path / "qcluster.log"
    with web_log.open("w") as web_out, worker_log.open("w") as worker_out:
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=web_out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = qcluster_start(env=env, log=worker_out)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for(
                lambda: requests.get(f"{base}/healthz", timeout=2).status_code == 200,
                timeout=60,
                what="gunicorn",
                log=web_log,
            )
            yield {
                "base": base,
                "access_log": tmp_path / "access.log",
                "logs": (web_log, worker_log),
            }
        finally:
            _stop(web)
            qcluster_stop(worker, grace=10)


def _logs(stack) -> str:
    return "\n".join(path.read_text()[-3000:] for path in stack["logs"])


def _seller_token() -> str:
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token

    from listings.tests.factories import UserFactory

    seller = UserFactory(username="shop")
    seller.groups.add(Group.objects.get_or_create(name="Sellers")[0])
    return Token.objects.create(user=seller).key


def _demo_listing() -> tuple[dict, bytes]:
    from training import catalog

    rng = random.Random(11)
    product = catalog.random_product(rng)
    buffer = io.BytesIO()
    catalog.render_product(product, size=192, rng=rng).save(buffer, format="PNG")
    fields = {
        "title": catalog.product_title(product, rng),
        "description": catalog.product_description(product, rng),
        "category": slugify(product.category),
        "price": "19.99",
    }
    return fields, buffer.getvalue()


def test_the_production_stack_routes_a_listing_and_holds_its_limits(stack, own_redis):
    from listings.demo import categories_ensure
    from training import catalog

    base = stack["base"]
    categories_ensure(catalog.CATEGORIES)
    auth = {"Authorization": f"Token {_seller_token()}", **VIA_PROXY}

    # Plain HTTP is sent to HTTPS, except for the probes.
    redirect = requests.get(f"{base}/api/v1/listings/", allow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["Location"].startswith("https://")
    assert requests.get(f"{base}/readyz").json()["status"] == "ok"

    # A seller's listing is scored by the worker and routed.
    fields, photo = _demo_listing()
    created = requests.post(
        f"{base}/api/v1/listings/?wait=30",
        data=fields,
        files=[("images", ("p.png", photo, "image/png"))],
        headers=auth,
        timeout=60,
    )
    body = created.json()
    assert created.status_code == 201, body
    assert body["status"] in {"passed", "review", "held"}, (body, _logs(stack))
    verdict = body["score"]["verdict"]
    assert created.headers["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )

    # Its photo: for its seller, not for anyone without a login.
    photo_path = re.sub(r"^https?://[^/]+", "", body["images"][0]["url"])
    mine = requests.get(f"{base}{photo_path}", headers=auth)
    assert (mine.status_code, mine.headers["Content-Type"]) == (200, "image/png")
    assert mine.content == photo
    assert requests.get(f"{base}{photo_path}", headers=VIA_PROXY).status_code == 401

    # Static files, by their hashed names, from the app itself.
    login = requests.get(f"{base}/admin/login/", headers=VIA_PROXY).text
    stylesheet = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login)
    assert stylesheet, login[:500]
    css = requests.get(f"{base}{stylesheet[1]}", headers=VIA_PROXY)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "immutable" in css.headers["Cache-Control"]

    # /check/ allows 30 a minute whichever web process answers: one cache counts.
    statuses = [
        requests.post(
            f"{base}/api/v1/check/",
            headers={**auth, "Connection": "close"},
            data={"title": "x"},
        ).status_code
        for _ in range(31)
    ]
    assert 429 not in statuses[:30], statuses
    assert statuses[30] == 429, statuses
    pids = set(
        re.findall(
            r'"POST /api/v1/check/ HTTP/1.1" \d+ .* pid=<(\d+)>',
            stack["access_log"].read_text(),
        )
    )
    assert len(pids) == 2, f"one web process answered every /check/: {pids}"

    # The metrics: the verdict from the database, the latency and model load from
    # the worker process.
    scrape = requests.get(
        f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert scrape.status_code == 200
    text = scrape.text
    print(text)  # the scrape, for the record (pytest -s)
    assert (
        metric_sample(text, f'clipmatch_listings_scored_total{{verdict="{verdict}"}}')
        == 1
    )
    assert metric_sample(text, "clipmatch_scoring_latency_seconds_count") == 1
    assert metric_sample(text, "clipmatch_model_load_seconds_count") >= 1
    assert requests.get(f"{base}/metrics").status_code == 404

    # Redis stops: not ready, and nothing but the names of what fails.
    assert requests.get(f"{base}/readyz").status_code == 200
    _stop(own_redis)
    ready = requests.get(f"{base}/readyz", timeout=20)
    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "checks": {
            "database": "ok",
            "broker": "failing",
            "cache": "failing",
            "model": "ok",
        },
    }
    assert requests.get(f"{base}/healthz").status_code == 200
