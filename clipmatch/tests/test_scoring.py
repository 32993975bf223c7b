"""Pure scoring: bands, category ranks and the reasons a moderator reads."""

import numpy as np
import pytest

from clipmatch.inference.metrics import binary_metrics
from clipmatch.inference.scoring import (
    Thresholds,
    assess,
    best_chunk_similarity,
    ensemble,
    rank_categories,
)

T = Thresholds(
    title_pass=0.30,
    title_hold=0.20,
    description_pass=0.25,
    description_hold=0.15,
    category_top_k=1,
)
RANKED_OK = [("sneaker", 0.4), ("mug", 0.1)]
RANKED_MUG = [("mug", 0.4), ("sneaker", 0.1)]


def test_thresholds_band_at_their_edges():
    assert [T.band("title", s) for s in (0.30, 0.2999, 0.20, 0.1999)] == [
        "pass",
        "review",
        "review",
        "hold",
    ]


def test_thresholds_refuse_hold_above_pass():
    with pytest.raises(ValueError, match="title hold threshold is above its pass"):
        Thresholds.from_dict(
            {
                "title": {"pass": 0.1, "hold": 0.2},
                "description": {"pass": 0.1, "hold": 0},
            }
        )


def test_thresholds_refuse_missing_values():
    with pytest.raises(ValueError, match="need title.pass"):
        Thresholds.from_dict({"title": {"pass": 0.1}})


def test_thresholds_round_trip_through_a_dict():
    assert Thresholds.from_dict(T.as_dict()) == T


def test_a_listing_that_matches_everywhere_passes():
    result = assess(
        title_sims=[0.35, 0.31],
        description_sims=[0.3, 0.26],
        category_rankings=[RANKED_OK, RANKED_OK],
        listed_category="sneaker",
        thresholds=T,
    )

    assert result.verdict == "pass"
    assert result.similarity == 0.31
    assert result.reasons == ["All 2 images match the title and description."]


def test_the_worst_image_and_field_decide_and_are_named():
    result = assess(
        title_sims=[0.35, 0.12],
        description_sims=[0.22, 0.3],
        category_rankings=[RANKED_OK, RANKED_OK],
        listed_category="sneaker",
        thresholds=T,
    )

    assert result.verdict == "hold"
    assert result.reasons == [
        "Image 1 matches the description only weakly "
        "(similarity 0.220, passes at 0.250).",
        "Image 2 does not match the title (similarity 0.120, held below 0.200).",
    ]


def test_a_wrong_category_alone_sends_to_review():
    result = assess(
        title_sims=[0.35],
        description_sims=[None],
        category_rankings=[RANKED_MUG],
        listed_category="sneaker",
        thresholds=T,
    )

    assert result.verdict == "review"
    assert result.reasons == [
        "The image looks like a mug (0.400), listed as sneaker (sneaker ranks 2 of 2)."
    ]
    assert result.images[0].category_ok is False
    assert result.images[0].listed_rank == 2


def test_category_check_is_off_when_top_k_is_zero():
    loose = Thresholds(0.3, 0.2, 0.25, 0.15, category_top_k=0)
    result = assess(
        title_sims=[0.35],
        description_sims=[0.3],
        category_rankings=[RANKED_MUG],
        listed_category="sneaker",
        thresholds=loose,
    )

    assert result.verdict == "pass"


def test_no_images_is_review_never_pass():
    result = assess(
        title_sims=[],
        description_sims=[],
        category_rankings=[],
        listed_category="sneaker",
        thresholds=T,
    )

    assert (result.verdict, result.reasons) == (
        "review",
        ["The listing has no images to check."],
    )


def test_evidence_keeps_the_top_categories_rounded():
    result = assess(
        title_sims=[0.35],
        description_sims=[0.3],
        category_rankings=[
            [("sneaker", 0.41234), ("mug", 0.1), ("lamp", 0.05), ("hat", 0.0)]
        ],
        listed_category="sneaker",
        thresholds=T,
    )

    row = result.images_as_dicts(top=3)[0]
    assert row["categories"] == [
        {"category": "sneaker", "similarity": 0.4123},
        {"category": "mug", "similarity": 0.1},
        {"category": "lamp", "similarity": 0.05},
    ]
    assert (row["listed_rank"], row["title"], row["description"]) == (1, 0.35, 0.3)


def test_best_chunk_and_ensemble_and_ranking():
    image = np.array([1.0, 0.0])
    chunks = np.array([[0.0, 1.0], [0.6, 0.8]])
    assert best_chunk_similarity(image, chunks) == pytest.approx(0.6)
    np.testing.assert_allclose(
        ensemble(np.array([[1.0, 0.0], [0.0, 1.0]])), [2**-0.5, 2**-0.5]
    )
    classes = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert rank_categories(image, ["a", "b"], classes) == [("b", 1.0), ("a", 0.0)]


def test_binary_metrics_exact_figures():
    report = binary_metrics([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1], threshold=0.45)

    assert report["roc_auc"] == 0.75
    assert report["confusion"] == {"tp": 1, "fp": 1, "fn": 1, "tn": 1}
    assert (
        report["accuracy"],
        report["precision"],
        report["recall"],
        report["f1"],
    ) == (0.5, 0.5, 0.5, 0.5)
    assert report["n"] == 4
