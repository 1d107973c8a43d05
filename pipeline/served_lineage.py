"""What a served model version was trained and evaluated on, found in ML Metadata.

The Pusher records each push as a PushedModel artifact whose `pushed_destination` is
the version directory. From there the lineage runs back through MLMD's events: the
Pusher's inputs are the Trainer's model and the RegressionGate's blessing (beside
which the gate keeps the model's predictions on the test split), and the Trainer's
inputs include the Transform graph (whose analyzers hold the training split's
per-channel statistics).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from components.contract import GATE_PREDICTIONS_FILE
from components.uris import absolute

_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


@dataclasses.dataclass(frozen=True)
class ServedLineage:
    version_dir: str
    model_uri: str  # the Trainer's Model artifact
    transform_graph_uri: str
    gate_blessing_uri: str  # holds GATE_PREDICTIONS_FILE

    @property
    def test_predictions_path(self) -> str:
        return os.path.join(self.gate_blessing_uri, GATE_PREDICTIONS_FILE)


def _producer(store, artifact_id: int):
    for event in store.get_events_by_artifact_ids([artifact_id]):
        if event.type in _OUTPUTS:
            return event.execution_id
    return None


def _inputs_by_type(store, execution_id: int) -> dict:
    """Type name -> the newest input artifact of that type."""
    events = [event for event in store.get_events_by_execution_ids([execution_id])
              if event.type == metadata_store_pb2.Event.INPUT]
    artifacts = store.get_artifacts_by_id([event.artifact_id for event in events])
    type_names = {artifact_type.id: artifact_type.name for artifact_type in
                  store.get_artifact_types_by_id(list({a.type_id for a in artifacts}))}
    found = {}
    for artifact in sorted(artifacts, key=lambda artifact: artifact.id):
        found[type_names[artifact.type_id]] = artifact
    return found


def served_lineage(metadata_path: str, version_dir: str) -> Optional[ServedLineage]:
    """The lineage of the model pushed to `version_dir`, or None when this metadata
    store recorded no push there."""
    if not os.path.isfile(metadata_path):
        return None
    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(metadata_path))
    destination = absolute(version_dir)
    pushes = [artifact for artifact in store.get_artifacts_by_type("PushedModel")
              if "pushed_destination" in artifact.custom_properties
              and absolute(artifact.custom_properties["pushed_destination"].string_value)
              == destination]
    for pushed in sorted(pushes, key=lambda artifact: -artifact.id):
        pusher_id = _producer(store, pushed.id)
        pusher_inputs = _inputs_by_type(store, pusher_id) if pusher_id else {}
        model, blessing = pusher_inputs.get("Model"), pusher_inputs.get("ModelBlessing")
        trainer_id = _producer(store, model.id) if model else None
        transform_graph = (_inputs_by_type(store, trainer_id).get("TransformGraph")
                           if trainer_id else None)
        if blessing and transform_graph:
            return ServedLineage(destination, model.uri, transform_graph.uri, blessing.uri)
    return None
