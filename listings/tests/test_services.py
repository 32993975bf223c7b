"""The status machine, scoring requests, the scoring task's service and rescoring."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.utils import timezone

from clipmatch.models import Embedding
from listings.models import Listing, ListingDecision, ListingScore, ScoringAttempt
from listings.services.exceptions import TransitionNotAllowed
from listings.services.rescoring import listing_rescore
from listings.services.scoring import listing_request_scoring, listing_score
from listings.services.transitions import listing_transition
from listings.tests.conftest import HOLD_ALL, PASS_ALL, REVIEW_ALL
from listings.tests.factories import ListingFactory, ListingImageFactory

pytestmark = pytest.mark.django_db
Status = Listing.Status


def back_off_over():
    """Let the last failed attempt's back-off run out."""
    ScoringAttempt.objects.update(retry_after=timezone.now() - timedelta(seconds=1))


def request_and_score(listing) -> Listing:
    listing_request_scoring(listing_id=listing.pk)
    listing_score(listing_id=listing.pk)
    listing.refresh_from_db()
    return listing


def test_a_save_queues_scoring_once_after_commit(
    queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        listing = ListingFactory()
        ListingImageFactory(listing=listing)

    assert queued == [listing.pk]
    listing.refresh_from_db()
    assert listing.status == Status.PENDING
    assert listing.scoring_queued_at is not None


def test_saving_the_same_content_again_queues_nothing(
    queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        listing = ListingFactory()
        ListingImageFactory(listing=listing)
    with django_capture_on_commit_callbacks(execute=True):
        listing.save()
        listing.price = "12.00"
        listing.save()

    assert queued == [listing.pk]


def test_a_status_only_save_does_not_even_ask(monkeypatch):
    listing = ListingFactory()
    asked = []
    monkeypatch.setattr(
        "listings.services.scoring.listing_request_scoring",
        lambda *, listing_id: asked.append(listing_id),
    )

    listing.save(update_fields=["status"])
    listing.save(update_fields=["status", "updated_at", "score", "review_priority"])
    listing.save(update_fields=["title"])  # a content save asks: the spy works

    assert asked == [listing.pk]


def test_nothing_is_queued_when_the_transaction_rolls_back(
    queued, django_capture_on_commit_callbacks
):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                ListingImageFactory()
                raise RuntimeError("boom")

    assert callbacks == []
    assert queued == []
    assert not Listing.objects.exists()


def test_scoring_stores_score_provenance_and_routes_to_passed(
    listing_with_image, tiny_model, queued
):
    listing = request_and_score(listing_with_image)

    score = listing.score
    assert listing.status == Status.PASSED
    assert score.verdict == ListingScore.Verdict.PASS
    assert score.thresholds["title"] == {"pass": -1.0, "hold": -1.0}
    assert score.model_version.name == "tiny-clip-0"
    assert score.content_hash == listing.content_hash
    assert score.reasons == ["The image matches the title and description."]
    image = score.images[0]
    assert set(image) >= {"index", "title", "description", "categories", "listed_rank"}
    ranked = image["categories"]
    assert sorted(c["category"] for c in ranked) == ["handbag", "sneaker"]
    assert ranked[0]["similarity"] >= ranked[1]["similarity"]
    assert image["listed_rank"] == [c["category"] for c in ranked].index("sneaker") + 1
    assert score.similarity == pytest.approx(image["title"], abs=1e-4)
    last = listing.decisions.last()
    assert (last.from_status, last.to_status, last.reason_code) == (
        "pending",
        "passed",
        "scored_pass",
    )
    assert last.actor is None and last.actor_label == "system"
    assert last.model_version == str(score.model_version)
    assert last.score == score.similarity


@pytest.mark.parametrize(
    ("thresholds", "status", "reason_start"),
    [
        (HOLD_ALL, Status.HELD, "The image does not match the title (similarity "),
        (
            REVIEW_ALL,
            Status.REVIEW,
            "The image matches the title only weakly (similarity ",
        ),
    ],
)
def test_scores_route_into_bands(
    listing_with_image,
    use_model,
    tiny_clip_dir,
    queued,
    thresholds,
    status,
    reason_start,
):
    use_model(tiny_clip_dir, thresholds)

    listing = request_and_score(listing_with_image)

    assert listing.status == status
    assert listing.score.reasons[0].startswith(reason_start)


def test_a_wrong_category_goes_to_review_with_a_readable_reason(
    listing_with_image, use_model, tiny_clip_dir, queued
):
    use_model(tiny_clip_dir, {**PASS_ALL, "category_top_k": 1})
    listing = listing_with_image
    request_and_score(listing)
    ranking = listing.score.images[0]["categories"]
    seen = ranking[0]["category"]
    other = "handbag" if seen == "sneaker" else "sneaker"
    from listings.models import Category

    with pytest.MonkeyPatch.context():
        listing.category = Category.objects.get(name=other)
        listing.save()
        listing = request_and_score(listing)

    assert listing.status == Status.REVIEW
    assert listing.score.reasons == [
        f"The image looks like a {seen} ({ranking[0]['similarity']:.3f}), listed as "
        f"{other} ({other} ranks 2 of 2)."
    ]


def test_audit_samples_go_to_review_and_are_marked(
    listing_with_image, tiny_model, queued, settings
):
    settings.CLIPMATCH = {**settings.CLIPMATCH, "AUDIT_RATE": 1.0}

    listing = request_and_score(listing_with_image)

    assert listing.status == Status.REVIEW
    assert listing.score.verdict == "pass"
    assert listing.score.audit_sample is True
    assert listing.decisions.last().reason_code == "audit_sample"


def test_running_the_task_twice_scores_once(listing_with_image, tiny_model, queued):
    listing = request_and_score(listing_with_image)
    again = listing_score(listing_id=listing.pk)

    assert again.outcome == "not_pending"
    assert ListingScore.objects.filter(listing=listing).count() == 1
    assert listing.decisions.filter(to_status=Status.PASSED).count() == 1


def test_a_task_with_nothing_to_do_takes_no_lock_and_writes_nothing(
    listing_with_image, tiny_model, queued
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    listing = request_and_score(listing_with_image)

    with CaptureQueriesContext(connection) as queries:
        again = listing_score(listing_id=listing.pk)

    assert again.outcome == "not_pending"
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert set(statements) == {"SELECT"}
    assert not any("FOR UPDATE" in q["sql"] for q in queries.captured_queries)


def test_a_corrupt_image_leaves_the_listing_in_review_with_the_error(
    tiny_model, queued, db
):
    image = ListingImageFactory()
    image.image.save(
        "broken.png", ContentFile(b"\x89PNG\r\n\x1a\n not really"), save=False
    )
    image.save()

    listing = request_and_score(image.listing)

    assert listing.status == Status.REVIEW
    assert listing.score is None
    assert listing.scoring_error.startswith("Scoring failed: Image 1: Unreadable image")
    decision = listing.decisions.last()
    assert (decision.to_status, decision.reason_code) == ("review", "scoring_failed")
    assert ScoringAttempt.objects.get(listing=listing).outcome == "failed"


def test_an_unloadable_model_retries_then_goes_to_review_never_passed(
    listing_with_image, use_model, tmp_path, queued, settings
):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "clipmatch.json").write_text(
        '{"thresholds": %s}' % str(PASS_ALL).replace("'", '"')
    )
    use_model(broken)
    listing = listing_with_image
    listing_request_scoring(listing_id=listing.pk)

    gaps = []

    def last_gap():
        attempt = listing.scoring_attempts.order_by("-started_at").first()
        return (attempt.retry_after - attempt.finished_at).total_seconds()

    first = listing_score(listing_id=listing.pk)
    too_soon = listing_score(listing_id=listing.pk)
    gaps.append(last_gap())
    back_off_over()
    second = listing_score(listing_id=listing.pk)
    gaps.append(last_gap())
    back_off_over()
    third = listing_score(listing_id=listing.pk)

    listing.refresh_from_db()
    assert (first.outcome, too_soon.outcome) == ("retry", "backing_off")
    assert (second.outcome, third.outcome) == ("retry", "failed")
    assert listing.status == Status.REVIEW
    assert listing.scoring_error.startswith("Scoring failed 3 times; last error: ")
    assert "Could not load model" in listing.scoring_error
    assert gaps == [30.0, 60.0]
    assert listing.scoring_attempts.count() == 3
    decision = listing.decisions.get(to_status=Status.REVIEW)
    assert (decision.reason_code, decision.reason) == (
        "scoring_failed",
        listing.scoring_error,
    )
    assert not listing.decisions.filter(to_status=Status.PASSED).exists()


def test_changing_the_content_sends_a_routed_listing_back_to_pending(
    listing_with_image, tiny_model, queued, django_capture_on_commit_callbacks
):
    listing = request_and_score(listing_with_image)
    with django_capture_on_commit_callbacks(execute=True):
        listing.title = "blue dotted mug"
        listing.save()

    listing.refresh_from_db()
    assert listing.status == Status.PENDING
    decision = listing.decisions.last()
    assert (decision.from_status, decision.reason_code) == ("passed", "content_changed")
    assert queued[-1] == listing.pk


def test_rescore_after_a_threshold_change_runs_no_model(
    listing_with_image, tiny_model, use_model, tiny_clip_dir, queued, monkeypatch
):
    listing = request_and_score(listing_with_image)
    embeddings = Embedding.objects.count()
    use_model(tiny_clip_dir, HOLD_ALL)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("clipmatch.services.get_engine", no_model)
    outcome = listing_rescore(listing_id=listing.pk)

    listing.refresh_from_db()
    assert outcome.outcome == "rescored"
    assert listing.status == Status.HELD
    assert Embedding.objects.count() == embeddings
    assert ListingScore.objects.filter(listing=listing).count() == 1
    assert listing.score.thresholds["title"] == {"pass": 1.0, "hold": 1.0}
    assert listing.decisions.last().reason_code == "rescored"


def test_rescore_never_overrides_a_human_decision(
    listing_with_image, tiny_model, queued
):
    listing = request_and_score(listing_with_image)
    moderator = get_user_model().objects.create_user("mod")
    listing_transition(listing=listing, to_status=Status.HELD, reason_code="test")
    listing_transition(
        listing=listing, to_status=Status.APPROVED, actor=moderator, reason_code="ok"
    )

    assert listing_rescore(listing_id=listing.pk).outcome == "skipped"
    listing.refresh_from_db()
    assert listing.status == Status.APPROVED


def test_forbidden_transitions_raise_and_write_nothing(listing_with_image):
    with pytest.raises(
        TransitionNotAllowed, match="cannot go from pending to approved"
    ):
        listing_transition(
            listing=listing_with_image, to_status=Status.APPROVED, reason_code="x"
        )

    assert ListingDecision.objects.count() == 0


def test_decisions_are_append_only(listing_with_image):
    decision = listing_transition(
        listing=listing_with_image, to_status=Status.REVIEW, reason_code="x"
    )

    with pytest.raises(TypeError, match="append-only"):
        decision.save()
    with pytest.raises(TypeError, match="append-only"):
        decision.delete()
    with pytest.raises(TypeError, match="append-only"):
        ListingDecision.objects.all().update(reason="changed")


def test_a_decision_made_on_a_stale_page_is_refused(listing_with_image, tiny_model):
    moderator = get_user_model().objects.create_user("mod")
    listing_transition(
        listing=listing_with_image, to_status=Status.HELD, reason_code="x"
    )
    stale = Listing.objects.get(pk=listing_with_image.pk)
    listing_transition(
        listing=listing_with_image,
        to_status=Status.PENDING,
        reason_code="content_changed",
    )

    with pytest.raises(TransitionNotAllowed, match="is pending now, no longer held"):
        listing_transition(
            listing=stale,
            to_status=Status.APPROVED,
            actor=moderator,
            reason_code="ok",
            expected_status=stale.status,
        )
    with pytest.raises(
        TransitionNotAllowed, match="cannot go from pending to approved"
    ):
        listing_transition(
            listing=stale, to_status=Status.APPROVED, actor=moderator, reason_code="ok"
        )
    assert not ListingDecision.objects.filter(to_status=Status.APPROVED).exists()


def test_only_a_person_can_approve(listing_with_image):
    listing_transition(
        listing=listing_with_image, to_status=Status.HELD, reason_code="x"
    )

    with pytest.raises(TransitionNotAllowed, match="Only a person can move a listing"):
        listing_transition(
            listing=listing_with_image, to_status=Status.APPROVED, reason_code="x"
        )


def test_a_second_delivery_while_the_first_runs_does_nothing(
    listing_with_image, tiny_model, queued
):
    listing_request_scoring(listing_id=listing_with_image.pk)
    ScoringAttempt.objects.create(
        listing=listing_with_image,
        content_hash=Listing.objects.get(pk=listing_with_image.pk).content_hash,
        started_at=timezone.now(),
    )

    outcome = listing_score(listing_id=listing_with_image.pk)

    assert outcome.outcome == "already_running"
    assert ScoringAttempt.objects.count() == 1
    assert not ListingScore.objects.exists()


def test_content_changed_while_scoring_is_not_routed_on_the_old_content(
    listing_with_image, tiny_model, queued, monkeypatch
):
    from listings.services import scoring

    real_assess = scoring.contents_assess

    def assess_then_seller_edits(contents, active):
        result = real_assess(contents, active)
        edited = Listing.objects.get(pk=listing_with_image.pk)
        edited.title = "a completely different title"
        edited.save()
        return result

    monkeypatch.setattr(scoring, "contents_assess", assess_then_seller_edits)
    listing_request_scoring(listing_id=listing_with_image.pk)

    outcome = listing_score(listing_id=listing_with_image.pk)

    listing = Listing.objects.get(pk=listing_with_image.pk)
    assert outcome.outcome == "superseded"
    assert listing.status == Status.PENDING
    assert listing.score is None
    assert not ListingScore.objects.exists()
    assert ScoringAttempt.objects.get().outcome == "superseded"


def test_a_content_change_marks_pending_in_the_same_transaction(
    listing_with_image, tiny_model, queued, django_capture_on_commit_callbacks
):
    listing = request_and_score(listing_with_image)
    from django.db import transaction

    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            listing.title = "blue dotted mug"
            listing.save()
            inside = Listing.objects.get(pk=listing.pk)
            assert (inside.status, inside.score_id) == (Status.PENDING, None)

    assert len(callbacks) == 1


def test_stored_file_names_come_from_the_bytes_not_the_uploader(queued):
    from conftest import png_bytes

    data = png_bytes(seed=42)
    image = ListingImageFactory(image=ContentFile(data, name="invoice.html"))

    folder, name = image.image.name.rsplit("/", 1)
    assert folder == f"listings/{image.listing_id}"
    assert name.startswith(image.content_hash[:32])
    assert name.endswith(".png")
    assert "invoice" not in name


def test_listing_update_refuses_anyone_but_the_seller(listing_with_image):
    from listings.services.exceptions import ListingNotEditable
    from listings.services.lifecycle import listing_update
    from listings.tests.factories import UserFactory

    with pytest.raises(ListingNotEditable, match="Only the listing's seller can"):
        listing_update(
            listing=listing_with_image,
            actor=UserFactory(username="stranger"),
            changes={"title": "mine"},
        )
    listing_with_image.refresh_from_db()
    assert listing_with_image.title == "red striped sneaker"
