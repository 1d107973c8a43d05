"""Drift between what a served version is asked and what it was trained and evaluated on.

Four comparisons, each a check with its measured value and threshold:
- the predicted-class distribution against the model's own predictions on the test
  split, as TFDV's L-infinity distance (the same comparator the label drift check
  between spans uses);
- the top-1 confidence distribution against the test split's, as TFDV's
  Jensen-Shannon divergence;
- each colour channel's pixel mean and standard deviation against the training
  split's, which the Transform computed and baked into the model;
- the image formats and declared sizes against the training data's (ExampleGen
  stores 32x32 PNG).

TFDV compares the two datasets of predictions: both become statistics
(`generate_statistics_from_dataframe`) and a schema with drift comparators judges
them. The pixel and format checks are hand-written: their reference is not a dataset
TFDV can describe but the Transform's analyzer constants (a mean and a standard
deviation per channel over every training pixel) and the contract's image format.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import List, Optional

import numpy as np

from components.contract import CLASS_NAMES, IMAGE_HEIGHT, IMAGE_WIDTH
from components.monitoring.config import MonitoringConfig
from components.monitoring.served_traffic import UNDECODABLE, ServedImages

# The features of the two prediction datasets TFDV compares.
PREDICTED_CLASS_FEATURE = "predicted_class"
CONFIDENCE_FEATURE = "top1_confidence"
# The training data is PNG (ExampleGen), lossless; of what clients send, BMP and raw
# pixels (the model PNG-encodes them) are lossless too, JPEG is not.
LOSSY_FORMATS = ("JPEG",)
CHANNEL_NAMES = ("red", "green", "blue")
# The confidence histograms drawn in the page: ten bins over [0, 1].
CONFIDENCE_BINS = np.linspace(0.0, 1.0, 11)


@dataclasses.dataclass
class Reference:
    """What the served version was trained and evaluated on."""

    channel_mean: np.ndarray  # float [3], 0..255, over every training pixel
    channel_std: np.ndarray  # float [3]
    test_predicted: np.ndarray  # int [N], the model's class on each test image
    test_confidence: np.ndarray  # float [N], its top-1 probability


def _check(name: str, value: float, threshold: float, anomaly: bool, description: str,
           source: str) -> dict:
    return {"check": name, "value": float(value), "threshold": float(threshold),
            "anomaly": bool(anomaly), "description": description, "by": source}


def _prediction_statistics(predicted: np.ndarray, confidence: np.ndarray):
    import pandas as pd
    import tensorflow_data_validation as tfdv

    return tfdv.generate_statistics_from_dataframe(pd.DataFrame({
        PREDICTED_CLASS_FEATURE: np.array(CLASS_NAMES)[predicted],
        CONFIDENCE_FEATURE: confidence.astype(np.float32)}))


def prediction_checks(served: ServedImages, reference: Reference,
                      config: MonitoringConfig) -> List[dict]:
    """TFDV's drift comparators on the predicted class and the top-1 confidence."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    predicted_class = schema.feature.add(name=PREDICTED_CLASS_FEATURE, type=schema_pb2.BYTES)
    predicted_class.drift_comparator.infinity_norm.threshold = config.class_share_threshold
    confidence = schema.feature.add(name=CONFIDENCE_FEATURE, type=schema_pb2.FLOAT)
    confidence.drift_comparator.jensen_shannon_divergence.threshold = (
        config.confidence_divergence_threshold)
    found = tfdv.validate_statistics(
        _prediction_statistics(served.predicted, served.confidence), schema,
        previous_statistics=_prediction_statistics(reference.test_predicted,
                                                   reference.test_confidence))
    measured = {info.path.step[0]: info.drift_measurements[0] for info in found.drift_skew_info}
    served_shares, test_shares = class_shares(served.predicted), class_shares(
        reference.test_predicted)
    most_moved = int(np.argmax(np.abs(served_shares - test_shares)))
    checks = []
    for feature, name, threshold, what in (
            (PREDICTED_CLASS_FEATURE, "predicted class", config.class_share_threshold,
             f"the share of {CLASS_NAMES[most_moved]!r} moved most: "
             f"{test_shares[most_moved]:.1%} of the test split, "
             f"{served_shares[most_moved]:.1%} of served images"),
            (CONFIDENCE_FEATURE, "top-1 confidence", config.confidence_divergence_threshold,
             f"median {np.median(reference.test_confidence):.2f} on the test split, "
             f"{np.median(served.confidence):.2f} on served images")):
        value = measured[feature].value if feature in measured else 0.0
        kind = ("L-infinity distance" if feature == PREDICTED_CLASS_FEATURE
                else "Jensen-Shannon divergence")
        checks.append(_check(name, value, threshold, feature in found.anomaly_info,
                             f"{kind} {value:.3f} (threshold {threshold:g}); {what}",
                             "TFDV"))
    return checks


def served_channel_statistics(served: ServedImages) -> Optional[tuple]:
    """(mean, standard deviation) per channel over every decodable served pixel; None
    when no served image decodes."""
    decodable = ~np.isnan(served.channel_means).any(axis=1)
    if not decodable.any():
        return None
    mean = served.channel_means[decodable].mean(axis=0)
    mean_square = served.channel_mean_squares[decodable].mean(axis=0)
    return mean, np.sqrt(np.maximum(mean_square - mean ** 2, 0.0))


def pixel_checks(served_statistics: Optional[tuple], reference: Reference,
                 config: MonitoringConfig) -> List[dict]:
    """The pixel checks on `served_channel_statistics`' (mean, std), or none when no
    served image decodes (None): the format check names the undecodable share."""
    if served_statistics is None:
        return []
    served_mean, served_std = served_statistics
    shifts = np.abs(served_mean - reference.channel_mean) / reference.channel_std
    worst_shift = int(np.argmax(shifts))
    ratios = served_std / reference.channel_std
    worst_ratio = int(np.argmax(np.abs(np.log(ratios))))

    def per_channel(values) -> str:
        return ", ".join(f"{name} {value:.1f}" for name, value in zip(CHANNEL_NAMES, values))

    return [
        _check("pixel mean", shifts[worst_shift], config.pixel_mean_shift_threshold,
               shifts[worst_shift] > config.pixel_mean_shift_threshold,
               f"{CHANNEL_NAMES[worst_shift]} moved by {shifts[worst_shift]:.2f} training "
               f"standard deviations (threshold {config.pixel_mean_shift_threshold:g}); "
               f"served {per_channel(served_mean)}, training "
               f"{per_channel(reference.channel_mean)}", "the Transform's statistics"),
        _check("pixel standard deviation", ratios[worst_ratio],
               config.pixel_std_ratio_threshold,
               not 1 / config.pixel_std_ratio_threshold <= ratios[worst_ratio]
               <= config.pixel_std_ratio_threshold,
               f"{CHANNEL_NAMES[worst_ratio]} is {ratios[worst_ratio]:.2f} times the "
               f"training split's (allowed {1 / config.pixel_std_ratio_threshold:.2f} to "
               f"{config.pixel_std_ratio_threshold:g}); served {per_channel(served_std)}, "
               f"training {per_channel(reference.channel_std)}",
               "the Transform's statistics"),
    ]


def format_checks(served: ServedImages, config: MonitoringConfig) -> List[dict]:
    formats = shares(served.formats)
    other_format = sum(share for name, share in formats.items()
                       if name in LOSSY_FORMATS or name == UNDECODABLE)
    sizes = shares(served.sizes)
    trained_size = f"{IMAGE_WIDTH}x{IMAGE_HEIGHT}"
    other_size = 1.0 - sizes.get(trained_size, 0.0)
    return [
        _check("image format", other_format, config.format_share_threshold,
               other_format > config.format_share_threshold,
               f"{other_format:.1%} of served images are lossy or undecodable, the "
               f"training data is lossless PNG (threshold "
               f"{config.format_share_threshold:.0%}): "
               + ", ".join(f"{name} {share:.1%}" for name, share in formats.items()),
               "the contract"),
        # The model refuses other sizes, so a logged one means the log is not what the
        # model saw (a proxy in front of another model, an edited log).
        _check("declared size", other_size, 0.0, other_size > 0.0,
               f"{other_size:.1%} of served images are not {trained_size}: "
               + ", ".join(f"{name or 'undecodable'} {share:.1%}"
                           for name, share in sizes.items()), "the contract"),
    ]


def shares(values: list) -> dict:
    """Value -> its share of `values`, the most common first."""
    return {value: count / len(values)
            for value, count in collections.Counter(values).most_common()}


def class_shares(predicted: np.ndarray) -> np.ndarray:
    return np.bincount(predicted, minlength=len(CLASS_NAMES)) / max(len(predicted), 1)


def compare(served: ServedImages, reference: Reference, config: MonitoringConfig) -> dict:
    """Every check, and the distributions behind them, as JSON-ready values."""
    served_statistics = served_channel_statistics(served)
    checks = (format_checks(served, config) + pixel_checks(served_statistics, reference, config)
              + prediction_checks(served, reference, config))
    channels = {}
    if served_statistics is not None:
        served_mean, served_std = served_statistics
        channels = {"names": list(CHANNEL_NAMES),
                    "training mean": reference.channel_mean.tolist(),
                    "served mean": served_mean.tolist(),
                    "training std": reference.channel_std.tolist(),
                    "served std": served_std.tolist()}
    return {
        "checks": checks,
        "anomalies": [check["check"] for check in checks if check["anomaly"]],
        "distributions": {
            "predicted_class_counts": {
                "test split": np.bincount(reference.test_predicted,
                                          minlength=len(CLASS_NAMES)).tolist(),
                "served": np.bincount(served.predicted, minlength=len(CLASS_NAMES)).tolist()},
            "confidence_histogram": {
                "bins": CONFIDENCE_BINS.tolist(),
                "test split": np.histogram(reference.test_confidence,
                                           CONFIDENCE_BINS)[0].tolist(),
                "served": np.histogram(served.confidence, CONFIDENCE_BINS)[0].tolist()},
            "channels": channels,
            "formats": shares(served.formats),
            "sizes": shares(served.sizes),
            "signatures": served.signatures,
        },
    }
