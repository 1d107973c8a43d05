"""Which statistics a span's class balance is compared with, and the drift config."""

from __future__ import annotations

import pytest
from tfx.types import standard_artifacts

from components.validation import drift
from tests.support.data import reviewed_schema


SPANS = {}


def _statistics(artifact_id: int, span: int):
    artifact = standard_artifacts.ExampleStatistics()
    artifact.id = artifact_id
    SPANS[artifact_id] = span
    return artifact


def _span_of(artifact):
    return SPANS[artifact.id]


def test_the_previous_span_is_the_newest_statistics_of_the_latest_span_before():
    found = [_statistics(1, 0), _statistics(2, 1), _statistics(3, 1), _statistics(4, 2)]
    assert [a.id for a in drift.previous_span(found, 2, _span_of)] == [3]
    # A span re-ingested later than a newer one does not count as "before".
    assert [a.id for a in drift.previous_span(found, 1, _span_of)] == [1]


def test_without_an_earlier_span_there_is_none():
    found = [_statistics(1, 4), _statistics(5, 4)]
    assert drift.previous_span(found, 4, _span_of) == []
    assert drift.previous_span([], 0, _span_of) == []


def test_a_skewed_class_balance_is_drift_and_a_normal_one_is_not():
    import numpy as np
    import tensorflow_data_validation as tfdv

    rng = np.random.default_rng(0)

    def statistics(labels):
        import pandas as pd
        return tfdv.generate_statistics_from_dataframe(
            pd.DataFrame({"label": labels}), tfdv.StatsOptions(schema=reviewed_schema()))

    baseline = statistics(rng.integers(0, 10, 2000))
    normal = statistics(rng.integers(0, 10, 2000))
    skewed = statistics(np.where(rng.random(2000) < 0.7, 3, rng.integers(0, 10, 2000)))
    assert not drift.label_drift(normal, baseline, reviewed_schema(), 0.1).anomaly_info
    found = drift.label_drift(skewed, baseline, reviewed_schema(), 0.1)
    assert list(found.anomaly_info) == ["label"]
    assert "Linfty distance" in found.anomaly_info["label"].description
    # Only drift: the schema's own checks (image, image_id missing here) are not in it.
    assert all(reason.short_description for reason in found.anomaly_info["label"].reason)


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5])
def test_a_threshold_outside_0_1_is_refused(threshold):
    with pytest.raises(ValueError, match="label drift threshold"):
        drift.drift_schema(reviewed_schema(), threshold)
