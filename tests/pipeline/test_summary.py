"""pipeline/summary.py reads a run back from a real MLMD store (SQLite)."""

from __future__ import annotations

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from pipeline import summary


def _put_context(store, type_name: str, name: str) -> int:
    type_id = store.put_context_type(metadata_store_pb2.ContextType(name=type_name))
    (context_id,) = store.put_contexts([metadata_store_pb2.Context(type_id=type_id, name=name)])
    return context_id


def _input_event(key_index_pairs) -> metadata_store_pb2.Event:
    event = metadata_store_pb2.Event(type=metadata_store_pb2.Event.INPUT)
    for key, index in key_index_pairs:
        event.path.steps.add().key = key
        event.path.steps.add().index = index
    return event


def test_an_artifact_given_under_two_input_keys_is_reported_under_both(tmp_path):
    """The Evaluator's candidate is also its baseline on the run after a blessing; MLMD
    then holds one INPUT event whose path names both keys."""
    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(str(tmp_path / "metadata.sqlite")))
    contexts = [_put_context(store, "pipeline", "p"), _put_context(store, "pipeline_run", "r1"),
                _put_context(store, "node", "p.Evaluator")]
    model_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Model"))
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Evaluator"))
    (model_id,) = store.put_artifacts([metadata_store_pb2.Artifact(
        type_id=model_type, uri="/root/Trainer/model/7", state=metadata_store_pb2.Artifact.LIVE)])
    event = _input_event([("model", 0), ("baseline_model", 0)])
    event.artifact_id = model_id
    (execution_id,) = store.put_executions([metadata_store_pb2.Execution(
        type_id=execution_type, last_known_state=metadata_store_pb2.Execution.COMPLETE)])
    store.put_attributions_and_associations([], [
        metadata_store_pb2.Association(context_id=context_id, execution_id=execution_id)
        for context_id in contexts])
    event.execution_id = execution_id
    store.put_events([event])

    (stored_event,) = store.get_events_by_execution_ids([execution_id])
    assert summary.event_keys(stored_event) == ["model", "baseline_model"]
    run = summary.latest_run(str(tmp_path / "metadata.sqlite"), "p")
    assert run["components"]["Evaluator"]["inputs"] == {
        "model": "/root/Trainer/model/7", "baseline_model": "/root/Trainer/model/7"}
