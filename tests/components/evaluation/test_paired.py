"""The paired no-regression test on constructed predictions of 10,000 test images."""

from __future__ import annotations

import numpy as np
import pytest

from components.evaluation.paired import compare

IMAGES = 10_000


def _models(rng, baseline_accuracy=0.94):
    """Labels and a baseline right on `baseline_accuracy` of the images."""
    labels = rng.integers(0, 10, IMAGES)
    baseline = labels.copy()
    wrong = rng.choice(IMAGES, int(round((1 - baseline_accuracy) * IMAGES)), replace=False)
    baseline[wrong] = (labels[wrong] + 1) % 10
    return labels, baseline


def _swap(rng, labels, predicted, fix: int, break_: int):
    """A copy of `predicted` that gets `fix` of its wrong images right and `break_` of
    its right images wrong, chosen at random."""
    candidate = predicted.copy()
    right = np.flatnonzero(predicted == labels)
    wrong = np.flatnonzero(predicted != labels)
    fixed = rng.choice(wrong, fix, replace=False)
    broken = rng.choice(right, break_, replace=False)
    candidate[fixed] = labels[fixed]
    candidate[broken] = (labels[broken] + 1) % 10
    return candidate


@pytest.mark.parametrize("seed", range(20))
def test_an_equally_good_model_that_differs_on_a_few_images_is_not_a_regression(seed):
    rng = np.random.default_rng(seed)
    labels, baseline = _models(rng)
    # Random images, a near-tie: the candidate alone right on about as many as the
    # baseline alone (up to 3 fewer). Accuracies may differ by up to 0.03 points,
    # which `max_accuracy_drop = 0` on the two figures rejected.
    breaks = int(rng.integers(5, 60))
    fixes = breaks - int(rng.integers(0, 4))
    differing = fixes + breaks
    candidate = _swap(rng, labels, baseline, fixes, differing - fixes)
    result = compare(labels, candidate, baseline, confidence=0.95, tolerance=0.005)
    assert not result.regression, result
    assert result.candidate_only_correct == fixes
    assert result.baseline_only_correct == differing - fixes


def test_equal_models_with_many_disagreements_are_rejected_at_about_the_stated_rate():
    rng = np.random.default_rng(7)
    rejected = 0
    trials = 400
    for _ in range(trials):
        labels, baseline = _models(rng)
        # Two independently retrained 94% models disagree on ~700 images.
        fixes = int(rng.binomial(700, 0.5))
        candidate = _swap(rng, labels, baseline, fixes, 700 - fixes)
        rejected += compare(labels, candidate, baseline, 0.95, 0.005).regression
    # One-sided 5%, where comparing the two accuracies as figures rejects ~half (and a
    # gate that never rejects would reject none).
    assert 0.02 < rejected / trials < 0.08


def test_a_real_drop_of_one_point_is_a_regression():
    rng = np.random.default_rng(3)
    labels, baseline = _models(rng)
    # 300 images fixed, 400 broken: 1 point worse on 10,000 images.
    candidate = _swap(rng, labels, baseline, 300, 400)
    result = compare(labels, candidate, baseline, confidence=0.95, tolerance=0.02)
    assert result.regression
    assert result.accuracy_difference == pytest.approx(-0.01)
    assert result.p_value < 0.001
    assert result.difference_interval[1] < 0 < result.difference_interval[1] + 0.01
    # The interval's upper bound agrees with the one-sided test at this confidence.
    assert result.difference_interval[1] == pytest.approx(
        -0.01 + 1.6449 * (700 - 100 ** 2 / 10_000) ** 0.5 / 10_000, abs=1e-4)
    assert "confidence" in result.reason


def test_the_tolerance_rejects_a_drop_the_test_cannot_see_and_confidence_one_ignores_it():
    rng = np.random.default_rng(4)
    labels, baseline = _models(rng)
    candidate = _swap(rng, labels, baseline, 0, 30)  # 0.3 points worse
    assert compare(labels, candidate, baseline, 1.0, 0.002).regression
    assert "tolerated" in compare(labels, candidate, baseline, 1.0, 0.002).reason
    assert not compare(labels, candidate, baseline, 1.0, 0.005).regression


def test_a_better_candidate_is_not_a_regression():
    rng = np.random.default_rng(5)
    labels, baseline = _models(rng)
    candidate = _swap(rng, labels, baseline, 200, 20)
    result = compare(labels, candidate, baseline, 0.95, 0.0)
    assert not result.regression and result.accuracy_difference > 0


@pytest.mark.parametrize("confidence, tolerance", [(0.3, 0.01), (1.2, 0.01), (0.9, -0.1)])
def test_out_of_range_settings_are_refused(confidence, tolerance):
    with pytest.raises(ValueError):
        compare([1], [1], [1], confidence, tolerance)
