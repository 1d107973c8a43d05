"""Drift between spans: each new span's class balance against the previous span's.

TFX's DistributionValidator compares two statistics artifacts with the comparators
of its config; here the L-infinity distance between the label distributions (the
largest difference of one class's share), per split. The previous span's
statistics are found in ML Metadata by `PreviousSpanStatisticsStrategy`.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional

from tfx import types
from tfx.dsl.components.common import resolver
from tfx.proto import distribution_validator_pb2

from components.contract import LABEL_KEY
from components.data import spans


def label_drift_config(threshold: float) -> distribution_validator_pb2.DistributionValidatorConfig:
    """Flags a split whose share of any one class differs from the previous span's by
    more than `threshold` (0.6 for a span that is 70% one class; ~0.01 between two
    halves of CIFAR-10)."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"label drift threshold must be within (0, 1], got {threshold}")
    config = distribution_validator_pb2.DistributionValidatorConfig()
    feature = config.default_slice_config.feature.add()
    feature.path.step.append(LABEL_KEY)
    feature.distribution_comparator.infinity_norm.threshold = threshold
    return config


def previous_span(statistics: List[types.Artifact], span_of: Callable[[types.Artifact], int]
                  ) -> List[types.Artifact]:
    """The newest statistics of the latest span before the newest one; with a single
    span, the newest span's own (compared with itself, nothing drifts)."""
    if not statistics:
        return []
    newest_span = max(span_of(artifact) for artifact in statistics)
    earlier = [artifact for artifact in statistics if span_of(artifact) < newest_span]
    candidates = earlier or statistics
    return [max(candidates, key=lambda artifact: (span_of(artifact), artifact.id))]


def examples_spans(store, statistics: List[types.Artifact]) -> Dict[int, int]:
    """Statistics artifact id -> span of the Examples it was computed from.

    StatisticsGen copies the Examples' `span` property, but ExampleGen records the
    span as a custom property, so the statistics' own is always 0: the span is read
    through the lineage (the execution that produced the statistics, and its input
    that has a span)."""
    from ml_metadata.proto import metadata_store_pb2

    output_events = [event for event in store.get_events_by_artifact_ids(
        [artifact.id for artifact in statistics])
        if event.type == metadata_store_pb2.Event.OUTPUT]
    producer = {event.artifact_id: event.execution_id for event in output_events}
    input_events = [event for event in store.get_events_by_execution_ids(
        list(set(producer.values()))) if event.type == metadata_store_pb2.Event.INPUT]
    inputs = {artifact.id: artifact for artifact in store.get_artifacts_by_id(
        list({event.artifact_id for event in input_events}))}
    span_of_execution = {
        event.execution_id: inputs[event.artifact_id].custom_properties[
            spans.SPAN_PROPERTY].int_value
        for event in input_events
        if spans.SPAN_PROPERTY in inputs[event.artifact_id].custom_properties}
    return {artifact_id: span_of_execution[execution_id]
            for artifact_id, execution_id in producer.items()
            if execution_id in span_of_execution}


class PreviousSpanStatisticsStrategy(resolver.ResolverStrategy):
    """Resolves a channel of every ExampleStatistics StatisticsGen published to the
    previous span's (see `previous_span`). A strategy, not a resolver function, for the
    same reason as `components.data.spans.LatestSpansStrategy` (Airflow)."""

    def resolve_artifacts(self, store, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        resolved = {}
        for key, artifacts in input_dict.items():
            span_by_id = examples_spans(store, artifacts) if artifacts else {}
            # Statistics of unspanned data count as span 0.
            resolved[key] = previous_span(artifacts, lambda a: span_by_id.get(a.id, 0))
        return resolved if all(resolved.values()) else None
