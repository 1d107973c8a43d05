"""The comparisons of served traffic with a reference: TFDV's drift comparators on the
predictions, the pixel and format checks."""

from __future__ import annotations

import numpy as np

from components.contract import CLASS_NAMES
from components.monitoring.config import MonitoringConfig
from components.monitoring.served_traffic import ServedImages
from components.monitoring.traffic_drift import Reference, compare

TRAINING_MEAN, TRAINING_STD = np.array([125.0, 123.0, 114.0]), np.array([63.0, 62.0, 66.0])


def _reference(rng) -> Reference:
    return Reference(TRAINING_MEAN, TRAINING_STD, rng.integers(0, 10, 2000),
                     rng.beta(5, 2, 2000))


def _served(rng, count: int, predicted=None, channel_mean=TRAINING_MEAN,
            formats=None) -> ServedImages:
    # Per-image means spread around the channel mean; mean squares so that the pixel
    # standard deviation over all images is the training split's.
    means = channel_mean + rng.normal(0, 20, size=(count, 3))
    mean_squares = means ** 2 + TRAINING_STD ** 2 - 20 ** 2
    return ServedImages(
        formats=formats or ["PNG"] * count, sizes=["32x32"] * count,
        channel_means=means, channel_mean_squares=mean_squares,
        predicted=rng.integers(0, 10, count) if predicted is None else predicted,
        confidence=rng.beta(5, 2, count).astype(np.float32),
        signatures={"serving_default": count})


def _anomalies(result: dict) -> list:
    return result["anomalies"]


def test_traffic_drawn_like_the_reference_is_no_drift():
    rng = np.random.default_rng(0)
    result = compare(_served(rng, 600), _reference(rng), MonitoringConfig())
    assert _anomalies(result) == [], result["checks"]
    assert len(result["checks"]) == 6


def test_one_class_predicted_is_drift_named_with_the_class():
    rng = np.random.default_rng(1)
    reference = _reference(rng)
    result = compare(_served(rng, 300, predicted=np.full(300, 3)), reference,
                     MonitoringConfig())
    assert "predicted class" in _anomalies(result)
    check = next(check for check in result["checks"] if check["check"] == "predicted class")
    expected = 1.0 - np.mean(reference.test_predicted == 3)  # cat: all of it, or ~10%
    assert abs(check["value"] - expected) < 1e-6 and check["by"] == "TFDV"
    assert repr(CLASS_NAMES[3]) in check["description"]


def test_moved_pixels_and_another_format_are_drift():
    rng = np.random.default_rng(2)
    # Blue up by a third of its training standard deviation; most images JPEG.
    moved = TRAINING_MEAN + np.array([0.0, 0.0, TRAINING_STD[2] / 3])
    result = compare(_served(rng, 400, channel_mean=moved,
                             formats=["JPEG"] * 300 + ["PNG"] * 100),
                     _reference(rng), MonitoringConfig())
    assert set(_anomalies(result)) == {"pixel mean", "image format"}
    pixel = next(check for check in result["checks"] if check["check"] == "pixel mean")
    assert pixel["description"].startswith("blue moved by 0.3")
    image_format = next(check for check in result["checks"] if check["check"] == "image format")
    assert image_format["value"] == 0.75 and "JPEG 75.0%" in image_format["description"]
