"""rescore, setup_schedules, migrate's schedules, create_moderator, serve's port check
and reconcile_scoring."""

import socket
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django_q.models import Schedule

from listings.models import Listing
from listings.services.scoring import listing_request_scoring, listing_score
from listings.tests.conftest import HOLD_ALL
from listings.tests.factories import ListingImageFactory

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), verbosity=0)
    return out.getvalue()


@pytest.fixture
def scored(tiny_model, queued):
    listings = []
    for _ in range(3):
        listing = ListingImageFactory().listing
        listing_request_scoring(listing_id=listing.pk)
        listing_score(listing_id=listing.pk)
        listings.append(listing)
    return listings


def test_rescore_dry_run_counts_and_changes_nothing(scored, use_model, tiny_clip_dir):
    use_model(tiny_clip_dir, HOLD_ALL)

    output = run("rescore", "--stale", "--dry-run")

    assert output.startswith("3 listing(s) to rescore with tiny-clip-0@")
    assert set(Listing.objects.values_list("status", flat=True)) == {"passed"}


def test_rescore_stale_reroutes_only_what_the_new_thresholds_change(
    scored, use_model, tiny_clip_dir
):
    assert run("rescore", "--stale").startswith("0 listing(s)")
    use_model(tiny_clip_dir, HOLD_ALL)

    output = run("rescore", "--stale")

    assert "Done: 3 rescored." in output
    assert set(Listing.objects.values_list("status", flat=True)) == {"held"}
    assert run("rescore", "--stale").startswith("0 listing(s)")


def test_setup_schedules_is_idempotent(settings):
    from listings.services.idempotency import PURGER
    from listings.services.reconcile import RECONCILER
    from listings.webhooks.services import DISPATCHER

    run("setup_schedules")
    output = run("setup_schedules")

    schedules = {s.name: s for s in Schedule.objects.all()}
    reconciler, dispatcher = schedules[RECONCILER], schedules[DISPATCHER]
    purger = schedules[PURGER]
    assert set(schedules) == {RECONCILER, DISPATCHER, PURGER}
    assert reconciler.func == "listings.tasks.reconcile_scoring"
    assert dispatcher.func == "listings.webhooks.tasks.dispatch_due_webhooks"
    assert purger.func == "listings.tasks.purge_idempotency_keys"
    for schedule in (reconciler, dispatcher):
        assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (
            "I",
            1,
            -1,
        )
    assert (purger.schedule_type, purger.minutes, purger.repeats) == ("I", 60, -1)
    # The scoring cluster runs it, as the reconciler; not the webhooks' cluster.
    assert purger.cluster is None
    assert output == (
        f"Updated schedule {RECONCILER!r}: every 1 minute(s).\n"
        f"Updated schedule {DISPATCHER!r}: every 1 minute(s).\n"
        f"Updated schedule {PURGER!r}: every 60 minute(s).\n"
    )


def test_create_moderator_prints_a_working_login():
    output = run("create_moderator", "--password", "s3cret-pass")

    user = get_user_model().objects.get(username="moderator")
    assert "username: moderator  password: s3cret-pass" in output
    assert user.is_staff and not user.is_superuser
    assert user.check_password("s3cret-pass")
    assert user.has_perm("listings.view_listing")


def test_migrate_already_created_the_reconciler_and_purge_schedules():
    from listings.services.idempotency import PURGER
    from listings.services.reconcile import RECONCILER

    assert Schedule.objects.filter(name=RECONCILER).exists()
    assert Schedule.objects.filter(name=PURGER).exists()


def test_create_seller_prints_a_login_and_a_token_that_the_api_accepts():
    from rest_framework.test import APIClient

    output = run("create_seller", "--username", "shop", "--password", "pw-123456")

    token = output.rsplit("API token: ", 1)[1].strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    user = get_user_model().objects.get(username="shop")
    assert "username: shop  password: pw-123456" in output
    assert user.check_password("pw-123456")
    assert list(user.groups.values_list("name", flat=True)) == ["Sellers"]
    assert client.get("/api/v1/listings/").status_code == 200


def test_api_token_prints_the_same_token_until_reset():
    from django.core.management.base import CommandError

    run("create_seller", "--username", "shop")
    first = run("api_token", "shop").strip()

    assert run("api_token", "shop").strip() == first
    assert run("api_token", "shop", "--reset").strip() != first
    with pytest.raises(CommandError, match="No user 'ghost'."):
        run("api_token", "ghost")


def test_api_seed_is_idempotent_and_prints_working_tokens(
    queued, use_model, bundled_model_dir
):
    use_model(bundled_model_dir)
    import json

    first = json.loads(run("api_seed", "--json"))
    second = json.loads(run("api_seed", "--json"))

    seller = get_user_model().objects.get(username="api-seller")
    statuses = sorted(seller.listings.values_list("status", flat=True))
    assert first == second
    assert set(first) == {"seller_token", "moderator_token"}
    assert len(statuses) == 3
    assert "pending" not in statuses  # scored by the bundled model, in the command


def test_migrate_names_each_schedule_it_creates_and_is_quiet_once_they_exist():
    from listings.services.idempotency import PURGER
    from listings.services.reconcile import RECONCILER
    from listings.webhooks.services import DISPATCHER

    def migrate(verbosity):
        out = StringIO()
        call_command("migrate", verbosity=verbosity, stdout=out, interactive=False)
        return [line for line in out.getvalue().splitlines() if "schedule" in line]

    Schedule.objects.all().delete()  # as on a fresh database
    quiet = migrate(0)
    Schedule.objects.all().delete()

    assert quiet == []
    assert migrate(1) == [
        f"Created schedule {RECONCILER!r}: every 1 minute(s).",
        f"Created schedule {PURGER!r}: every 60 minute(s).",
        f"Created schedule {DISPATCHER!r}: every 1 minute(s).",
    ]
    assert migrate(1) == []
    assert Schedule.objects.count() == 3


def test_serve_refuses_a_port_in_use_before_starting_anything():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(CommandError) as refused:
            call_command("serve", "--port", str(port))

    assert str(refused.value) == (
        f"Port {port} on 127.0.0.1 is in use; choose another, e.g. "
        "`make demo PORT=8001` or `manage.py serve --port 8001`."
    )
