"""Drift between spans: each new span's class balance against the previous span's.

`LabelDriftValidator` compares this run's statistics with the previous accepted span's
on the label: TFDV's L-infinity distance between the two class distributions (the
largest difference of one class's share), per split, against the reviewed schema with
a drift comparator on `label`. It writes what it finds as TFX's DistributionValidator
does (an ExampleAnomalies artifact, `SplitPair-<split>_<split>/SchemaDiff.pb`), for
the DataGate to act on.

Not TFX's DistributionValidator itself: its baseline input is required, so for the
first span it must be given the span's own statistics, and a component given one
artifact under two input keys fails under Airflow's launcher (one MLMD event per
key). Here the baseline is optional: with no earlier accepted span nothing is
compared.

The previous span's statistics are found in ML Metadata by
`PreviousSpanStatisticsStrategy`, through the lineage: ExampleGen records the span as
a custom property of its Examples, and StatisticsGen copies the (unset) property.
"""

from typing import Callable, Dict, List, Optional

from absl import logging
from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.components.common import resolver
from tfx.types import artifact_utils, standard_artifacts

from components.contract import LABEL_KEY, SPAN_PROPERTY
from components.validation import lineage
from components.validation.anomalies import SCHEMA_DIFF_FILE
from components.validation.data_gate import read_schema


def previous_span(statistics: List[types.Artifact], current_span: int,
                  span_of: Callable[[types.Artifact], int]) -> List[types.Artifact]:
    """The newest statistics of the latest span before `current_span`; none: []."""
    earlier = [artifact for artifact in statistics if span_of(artifact) < current_span]
    if not earlier:
        return []
    return [max(earlier, key=lambda artifact: (span_of(artifact), artifact.id))]


class PreviousSpanStatisticsStrategy(resolver.ResolverStrategy):
    """Resolves `statistics` (every ExampleStatistics StatisticsGen published, read
    after this run's StatisticsGen) to the previous accepted span's: the newest
    statistics of the latest span below the span of this run's statistics (the newest
    artifact: a StatisticsGen that ran published it; a cached one published nothing
    newer) that the DataGate let through. Spans the gate stopped are skipped, so a new
    span is compared with the last accepted one; with none, it resolves to nothing.
    A strategy, not a resolver function, for the same reason as
    `components.data.spans.LatestSpansStrategy` (Airflow)."""

    def resolve_artifacts(self, store, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        resolved = {}
        for key, every in input_dict.items():
            if not every:
                resolved[key] = []
                continue
            current = max(every, key=lambda artifact: artifact.id)
            examples = lineage.statistics_examples(store, every)
            accepted = lineage.passed_data_gate(
                store, [artifact.id for artifact in examples.values()])

            def span_of(artifact):
                # Statistics of unspanned data count as span 0.
                found = examples.get(artifact.id)
                return (found.custom_properties[SPAN_PROPERTY].int_value
                        if found else 0)

            validated = [artifact for artifact in every if artifact.id != current.id
                         and artifact.id in examples and examples[artifact.id].id in accepted]
            resolved[key] = previous_span(validated, span_of(current), span_of)
        return resolved


def drift_schema(schema, threshold: float):
    """A copy of `schema` with an L-infinity drift comparator on the label."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"label drift threshold must be within (0, 1], got {threshold}")
    with_comparator = type(schema)()
    with_comparator.CopyFrom(schema)
    for feature in with_comparator.feature:
        if feature.name == LABEL_KEY:
            feature.drift_comparator.infinity_norm.threshold = threshold
            return with_comparator
    raise ValueError(f"the schema has no {LABEL_KEY!r} feature to compare")


def label_drift(current_statistics, baseline_statistics, schema, threshold: float):
    """TFDV's comparison anomalies (drift only, nothing the schema check reports) of
    one split's statistics against the baseline's."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = tfdv.validate_statistics(current_statistics, drift_schema(schema, threshold),
                                     previous_statistics=baseline_statistics)
    drift_only = anomalies_pb2.Anomalies()
    drift_only.drift_skew_info.extend(found.drift_skew_info)
    for feature, info in found.anomaly_info.items():
        reasons = [reason for reason in info.reason if anomalies_pb2.AnomalyInfo.Type.Name(
            reason.type).startswith("COMPARATOR_")]
        if reasons:
            kept = drift_only.anomaly_info[feature]
            kept.severity = info.severity
            kept.reason.extend(reasons)
            kept.short_description = reasons[0].short_description
            kept.description = " ".join(reason.description for reason in reasons)
    return drift_only


@component
def LabelDriftValidator(  # noqa: N802 (a TFX component is named like a class)
    statistics: InputArtifact[standard_artifacts.ExampleStatistics],
    schema: InputArtifact[standard_artifacts.Schema],
    drift_anomalies: OutputArtifact[standard_artifacts.ExampleAnomalies],
    threshold: Parameter[float],
    baseline_statistics: InputArtifact[standard_artifacts.ExampleStatistics] = None,
):
    """Writes each split's label drift against `baseline_statistics` (the previous
    accepted span's); without a baseline, nothing (the first span)."""
    import os

    from tfx.components.statistics_gen import stats_artifact_utils
    from tfx.utils import writer_utils

    if baseline_statistics is None:
        logging.info("LabelDriftValidator: no earlier accepted span, nothing to compare")
        return
    reviewed = read_schema(schema)
    baseline_splits = set(artifact_utils.decode_split_names(baseline_statistics.split_names))
    compared = []
    for split in artifact_utils.decode_split_names(statistics.split_names):
        if split not in baseline_splits:
            continue
        drift = label_drift(stats_artifact_utils.load_statistics(statistics, split).proto(),
                            stats_artifact_utils.load_statistics(baseline_statistics,
                                                                 split).proto(),
                            reviewed, threshold)
        writer_utils.write_anomalies(os.path.join(
            drift_anomalies.uri, f"SplitPair-{split}_{split}", SCHEMA_DIFF_FILE), drift)
        compared.append(split)
    drift_anomalies.split_names = artifact_utils.encode_split_names(
        [f"{split}_{split}" for split in compared])
    logging.info(f"LabelDriftValidator: compared {', '.join(compared) or 'no split'} "
                 f"with {baseline_statistics.uri}")
