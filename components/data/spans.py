"""Which ingested spans a run trains on: all of them, or the newest N.

ExampleGen ingests one span per execution (its `{SPAN}` pattern), so the spans a model
trains on are Examples artifacts of earlier runs. This resolver strategy picks them out
of ML Metadata. It is a `ResolverStrategy` rather than a resolver function
(`tfx.dsl.input_resolution.canned_resolver_functions.rolling_range`) because the
Airflow runner's launcher runs strategies only.

A span ingested twice (its files changed) counts once, with its newest artifact, so
no image is trained on twice.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from tfx import types
from tfx.dsl.components.common import resolver

from components.contract import SPAN_PROPERTY
from components.validation import lineage


def span_of(artifact: types.Artifact) -> int:
    if not artifact.has_custom_property(SPAN_PROPERTY):
        raise RuntimeError(f"{artifact.uri}: Examples artifact has no span property "
                           f"(was it produced by a {{SPAN}} pattern?)")
    return int(artifact.get_custom_property(SPAN_PROPERTY))


def newest_per_span(artifacts: List[types.Artifact], num_spans: int) -> List[types.Artifact]:
    """The newest artifact of each span, the newest `num_spans` spans (0: every span),
    oldest span first."""
    newest: Dict[int, types.Artifact] = {}
    for artifact in artifacts:
        span = span_of(artifact)
        if span not in newest or artifact.id > newest[span].id:
            newest[span] = artifact
    spans = sorted(newest)
    if num_spans > 0:
        spans = spans[-num_spans:]
    return [newest[span] for span in spans]


class LatestSpansStrategy(resolver.ResolverStrategy):
    """Resolves every input channel to the newest `num_spans` spans (0: all spans).

    Usage (`Resolver` config values must be JSON-able):

        Resolver(strategy_class=LatestSpansStrategy, config={"num_spans": 3},
                 examples=Channel(type=Examples, producer_component_id="...",
                                  output_key="examples"))
    """

    def __init__(self, num_spans: int = 0, validated_only: bool = False):
        if num_spans < 0:
            raise ValueError(f"num_spans: must be >= 0 (0: every span), got {num_spans}")
        self._num_spans = num_spans
        # Only spans the DataGate let through (components.validation.lineage): a span it
        # stopped stays published and would otherwise be trained on by the next run.
        self._validated_only = validated_only

    def resolve_artifacts(self, store, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        if self._validated_only:
            input_dict = {key: [artifact for artifact in artifacts if artifact.id in
                                lineage.passed_data_gate(store, [a.id for a in artifacts])]
                          for key, artifacts in input_dict.items()}
        resolved = {key: newest_per_span(artifacts, self._num_spans)
                    for key, artifacts in input_dict.items()}
        # None: not every input has an artifact yet, so the consumers do not run.
        return resolved if all(resolved.values()) else None
