"""The span window resolver's choice among real Examples artifacts: the newest artifact
of each span, the newest N spans, oldest first."""

from __future__ import annotations

import pytest
from tfx.types import standard_artifacts

from components.contract import SPAN_PROPERTY
from components.data.spans import LatestSpansStrategy, newest_per_span


def _examples(artifact_id: int, span) -> standard_artifacts.Examples:
    artifact = standard_artifacts.Examples()
    artifact.id = artifact_id
    artifact.uri = f"/root/Cifar10ExampleGen/examples/{artifact_id}"
    if span is not None:
        artifact.set_int_custom_property(SPAN_PROPERTY, span)
    return artifact


def test_a_span_ingested_twice_counts_once_with_its_newest_artifact():
    # Span 1 was ingested again (its files changed) as artifact 5.
    artifacts = [_examples(1, 0), _examples(2, 1), _examples(3, 2), _examples(5, 1)]
    assert [a.id for a in newest_per_span(artifacts, 0)] == [1, 5, 3]
    assert [a.id for a in newest_per_span(artifacts, 2)] == [5, 3]


def test_the_strategy_waits_for_every_input_and_refuses_a_negative_window():
    strategy = LatestSpansStrategy(num_spans=1)
    resolved = strategy.resolve_artifacts(None, {"examples": [_examples(1, 0), _examples(2, 4)]})
    assert [a.id for a in resolved["examples"]] == [2]
    assert strategy.resolve_artifacts(None, {"examples": []}) is None
    with pytest.raises(ValueError, match="num_spans: must be >= 0"):
        LatestSpansStrategy(num_spans=-1)


def test_an_artifact_without_a_span_is_named():
    with pytest.raises(RuntimeError, match="/examples/9: Examples artifact has no span"):
        newest_per_span([_examples(9, None)], 0)
