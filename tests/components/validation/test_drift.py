"""Which statistics a span's class balance is compared with, and the drift config."""

from __future__ import annotations

import pytest
from tfx.types import standard_artifacts

from components.validation import drift


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


def test_the_config_compares_the_label_with_the_threshold():
    config = drift.label_drift_config(0.25)
    (feature,) = config.default_slice_config.feature
    assert list(feature.path.step) == ["label"]
    assert feature.distribution_comparator.infinity_norm.threshold == 0.25


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.5])
def test_a_threshold_outside_0_1_is_refused(threshold):
    with pytest.raises(ValueError, match="label drift threshold"):
        drift.label_drift_config(threshold)
