"""Drift between spans: each new span's class balance against the previous span's.

TFX's DistributionValidator compares two statistics artifacts with the comparators
of its config; here the L-infinity distance between the label distributions (the
largest difference of one class's share), per split. The previous span's
statistics are found in ML Metadata by `PreviousSpanStatisticsStrategy`.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from tfx import types
from tfx.dsl.components.common import resolver
from tfx.proto import distribution_validator_pb2

from components.contract import LABEL_KEY


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


def _span(artifact: types.Artifact) -> int:
    return int(artifact.span)


def previous_span(statistics: List[types.Artifact]) -> List[types.Artifact]:
    """The newest statistics of the latest span before the newest one; with a single
    span, the newest span's own (compared with itself, nothing drifts)."""
    if not statistics:
        return []
    newest_span = max(_span(artifact) for artifact in statistics)
    earlier = [artifact for artifact in statistics if _span(artifact) < newest_span]
    candidates = earlier or statistics
    return [max(candidates, key=lambda artifact: (_span(artifact), artifact.id))]


class PreviousSpanStatisticsStrategy(resolver.ResolverStrategy):
    """Resolves a channel of every ExampleStatistics StatisticsGen published to the
    previous span's (see `previous_span`). A strategy, not a resolver function, for the
    same reason as `components.data.spans.LatestSpansStrategy` (Airflow)."""

    def resolve_artifacts(self, store, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        resolved = {key: previous_span(artifacts) for key, artifacts in input_dict.items()}
        return resolved if all(resolved.values()) else None
