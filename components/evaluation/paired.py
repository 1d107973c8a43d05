"""Is the candidate worse than the baseline, judged on the same test images?

Two accuracies on 10,000 images each have a standard error of about 0.24 points at
94%, so comparing two figures rejects about half of all retrained models that are as
good as the served one. Paired, only the images on which the two models disagree
carry information: under "equally good", each disagreement is a fair coin (McNemar's
exact test). A candidate is called a regression when it is worse with the stated
confidence, or worse by more than the stated tolerance whatever the test says.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import numpy as np
from scipy import stats


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    test_images: int
    candidate_accuracy: float
    baseline_accuracy: float
    # Images only one of the two models gets right.
    candidate_only_correct: int
    baseline_only_correct: int
    # Candidate minus baseline, as a fraction of the test images.
    accuracy_difference: float
    # One-sided: the chance of the baseline winning this many of the disagreements
    # or more if the two models were equally good.
    p_value: float
    # Interval for the difference whose upper bound is the one-sided bound at
    # `confidence` (two-sided at 2 * confidence - 1), so "worse with confidence"
    # and "the interval lies below 0" agree (up to the normal approximation).
    difference_interval: Tuple[float, float]
    confidence: float
    tolerance: float
    regression: bool
    reason: Optional[str]


def compare(labels, candidate_predicted, baseline_predicted, confidence: float,
            tolerance: float) -> PairedComparison:
    """Paired comparison of two models' predicted classes on the same labelled images.

    Args:
      confidence: in [0.5, 1]; a candidate is a regression when the one-sided p-value
        of "worse" is below 1 - confidence (1: never on significance alone).
      tolerance: a candidate worse by more than this fraction (0.005 = half a point)
        is a regression however noisy the comparison.
    """
    if not 0.5 <= confidence <= 1.0:
        raise ValueError(f"confidence must be within [0.5, 1], got {confidence}")
    if tolerance < 0.0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    labels = np.asarray(labels)
    candidate_correct = np.asarray(candidate_predicted) == labels
    baseline_correct = np.asarray(baseline_predicted) == labels
    if not labels.size or candidate_correct.shape != baseline_correct.shape:
        raise ValueError(f"need the same non-empty test images for both models, got "
                         f"{candidate_correct.shape} and {baseline_correct.shape}")
    images = int(labels.size)
    candidate_only = int(np.sum(candidate_correct & ~baseline_correct))
    baseline_only = int(np.sum(baseline_correct & ~candidate_correct))
    disagreements = candidate_only + baseline_only
    difference = (candidate_only - baseline_only) / images
    p_value = (stats.binomtest(baseline_only, disagreements, 0.5,
                               alternative="greater").pvalue if disagreements else 1.0)
    # Paired difference of proportions (normal approximation).
    variance = (disagreements - (candidate_only - baseline_only) ** 2 / images) / images ** 2
    half_width = (stats.norm.ppf(confidence) * math.sqrt(max(variance, 0.0))
                  if confidence < 1.0 else math.inf)
    reason = None
    if p_value < 1.0 - confidence:
        reason = (f"worse than the baseline with {confidence:.0%} confidence: the baseline "
                  f"alone is right on {baseline_only} images, the candidate alone on "
                  f"{candidate_only} (one-sided McNemar p = {p_value:.2g})")
    elif -difference > tolerance:
        reason = (f"{-difference:.2%} below the baseline, more than the tolerated "
                  f"{tolerance:.2%}")
    return PairedComparison(
        test_images=images,
        candidate_accuracy=float(candidate_correct.mean()),
        baseline_accuracy=float(baseline_correct.mean()),
        candidate_only_correct=candidate_only, baseline_only_correct=baseline_only,
        accuracy_difference=difference, p_value=float(p_value),
        difference_interval=(difference - half_width, difference + half_width),
        confidence=confidence, tolerance=tolerance,
        regression=reason is not None, reason=reason)
