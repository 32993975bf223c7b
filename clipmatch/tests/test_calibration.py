"""Choosing cuts for a target precision, judged by a Wilson lower bound."""

import numpy as np
import pytest

from clipmatch.inference.calibration import hold_cut, pass_cut, propose, wilson_lower


def test_wilson_lower_bound_is_below_the_observed_share_and_tightens_with_n():
    # By hand: (p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.645.
    assert wilson_lower(9, 10) == pytest.approx(0.6523, abs=1e-4)
    assert wilson_lower(90, 100) == pytest.approx(0.8396, abs=1e-4)
    assert wilson_lower(0, 0) == 0.0


def test_hold_is_the_highest_cut_whose_held_share_is_surely_mismatches():
    # 200 mismatches at 0.0-0.199, then matches from 0.2 up, with one mismatch
    # hidden among the matches at 0.25.
    scores = np.r_[np.arange(200) / 1000, 0.2 + np.arange(100) / 1000]
    labels = np.r_[np.zeros(200, int), np.ones(100, int)]
    labels[250] = 0

    cut = hold_cut(scores, labels, 0.95)

    held = scores < cut
    assert wilson_lower(int((labels[held] == 0).sum()), int(held.sum())) >= 0.95
    # 200 mismatches + 5 matches: lower bound 0.9507; with a sixth match 0.9447.
    assert cut == pytest.approx(0.205)
    assert hold_cut(scores, labels, 0.999) is None


def test_pass_is_the_lowest_cut_whose_passed_share_is_surely_matches():
    scores = np.r_[np.arange(100) / 1000, 0.5 + np.arange(300) / 1000]
    labels = np.r_[np.zeros(100, int), np.ones(300, int)]

    cut = pass_cut(scores, labels, 0.98)

    # 300 matches and the top 2 mismatches: lower bound 0.9802; a third: 0.9755.
    assert cut == pytest.approx(0.098)
    assert pass_cut(scores[-50:], labels[-50:], 0.98) is None  # too few to be sure


def test_a_proposal_without_a_reachable_hold_holds_nothing_and_says_so():
    result = propose([0.1, 0.2, 0.3, 0.4], [1, 0, 1, 0], target=0.9, pass_target=0.9)

    assert result["hold"] == 0.1
    assert result["fit"]["held"] == 0
    assert result["notes"][0].startswith("No cut holds listings at 90% mismatch")
