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
from components.validation import lineage


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


def previous_span(statistics: List[types.Artifact], current_span: int,
                  span_of: Callable[[types.Artifact], int]) -> List[types.Artifact]:
    """The newest statistics of the latest span before `current_span`; none: []."""
    earlier = [artifact for artifact in statistics if span_of(artifact) < current_span]
    if not earlier:
        return []
    return [max(earlier, key=lambda artifact: (span_of(artifact), artifact.id))]


class PreviousSpanStatisticsStrategy(resolver.ResolverStrategy):
    """Resolves `statistics` (every ExampleStatistics StatisticsGen published, read
    after this run's StatisticsGen) to the statistics of the previous validated span:
    the newest statistics of the latest span below the span of this run's statistics
    (the newest artifact: a StatisticsGen that ran published it; a cached one
    published nothing newer) that the DataGate let through. Spans the gate stopped are
    skipped, so a new span is compared with the last accepted one. With no accepted
    earlier span, this run's statistics themselves (DistributionValidator has no
    optional baseline; compared with itself, nothing drifts). A strategy, not a
    resolver function, for the same reason as
    `components.data.spans.LatestSpansStrategy` (Airflow); one input channel, because
    TFX 1.16's input graph fails on a resolver mixing a query channel with an output
    channel.

    Spans are read through the lineage: ExampleGen records the span as a custom
    property of its Examples, and StatisticsGen copies the (unset) property instead.
    """

    def resolve_artifacts(self, store, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        resolved = {}
        for key, every in input_dict.items():
            if not every:
                return None
            current = max(every, key=lambda artifact: artifact.id)
            examples = lineage.statistics_examples(store, every)
            accepted = lineage.passed_data_gate(
                store, [artifact.id for artifact in examples.values()])

            def span_of(artifact):
                # Statistics of unspanned data count as span 0.
                found = examples.get(artifact.id)
                return (found.custom_properties[spans.SPAN_PROPERTY].int_value
                        if found else 0)

            validated = [artifact for artifact in every
                         if artifact.id in examples and examples[artifact.id].id in accepted]
            resolved[key] = previous_span(validated, span_of(current), span_of) or [current]
        return resolved
