"""rescore, setup_schedules, create_moderator and reconcile_scoring."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django_q.models import Schedule

from listings.models import Listing
from listings.services import listing_request_scoring, listing_score
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
    run("setup_schedules")
    run("setup_schedules")

    schedule = Schedule.objects.get()
    assert schedule.func == "listings.tasks.reconcile_scoring"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)


def test_create_moderator_prints_a_working_login():
    output = run("create_moderator", "--password", "s3cret-pass")

    user = get_user_model().objects.get(username="moderator")
    assert "username: moderator  password: s3cret-pass" in output
    assert user.is_staff and not user.is_superuser
    assert user.check_password("s3cret-pass")
    assert user.has_perm("listings.view_listing")


def test_migrate_already_created_the_reconciler_schedule():
    from listings.services import RECONCILER

    assert Schedule.objects.filter(name=RECONCILER).exists()
