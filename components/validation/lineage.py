"""Which ingested data passed validation, read from ML Metadata's lineage.

A span that the DataGate stopped stays published (its Examples and statistics are
artifacts like any other), so the resolvers that look back over earlier runs (the
span window the Trainer reads, the previous span's statistics) must skip it: they keep
only Examples that were an input of a DataGate execution that completed, or was
cached, which is also the case when an operator let anomalies through
(`validation.block_on_anomalies=false`).
"""

from __future__ import annotations

from typing import Dict, Iterable, Set

from tfx import types

from components.contract import SPAN_PROPERTY

# The DataGate's execution type in MLMD: its component class's full name.
DATA_GATE_EXECUTION_TYPE = "components.validation.data_gate.DataGate"


def passed_data_gate(store, examples_ids: Iterable[int]) -> Set[int]:
    """The ids among `examples_ids` of Examples a DataGate let through."""
    from ml_metadata.proto import metadata_store_pb2

    from ml_metadata import errors

    examples_ids = list(examples_ids)
    if not examples_ids:
        return set()
    try:
        gate_type = store.get_execution_type(DATA_GATE_EXECUTION_TYPE)
    except errors.NotFoundError:  # no DataGate has run in this store yet
        return set()
    input_events = [event for event in store.get_events_by_artifact_ids(examples_ids)
                    if event.type == metadata_store_pb2.Event.INPUT]
    passed_states = (metadata_store_pb2.Execution.COMPLETE,
                     metadata_store_pb2.Execution.CACHED)
    passed = {execution.id for execution in store.get_executions_by_id(
        list({event.execution_id for event in input_events}))
        if execution.type_id == gate_type.id and execution.last_known_state in passed_states}
    return {event.artifact_id for event in input_events if event.execution_id in passed}


def statistics_examples(store, statistics: Iterable[types.Artifact]) -> Dict[int, object]:
    """Statistics artifact id -> the MLMD Examples artifact it was computed from (the
    input of the StatisticsGen execution that produced it that has a span)."""
    from ml_metadata.proto import metadata_store_pb2

    statistics_ids = [artifact.id for artifact in statistics]
    if not statistics_ids:
        return {}
    producer = {event.artifact_id: event.execution_id
                for event in store.get_events_by_artifact_ids(statistics_ids)
                if event.type == metadata_store_pb2.Event.OUTPUT}
    input_events = [event for event in store.get_events_by_execution_ids(
        list(set(producer.values()))) if event.type == metadata_store_pb2.Event.INPUT]
    inputs = {artifact.id: artifact for artifact in store.get_artifacts_by_id(
        list({event.artifact_id for event in input_events}))}
    examples_of_execution = {
        event.execution_id: inputs[event.artifact_id] for event in input_events
        if SPAN_PROPERTY in inputs[event.artifact_id].custom_properties}
    return {statistics_id: examples_of_execution[execution_id]
            for statistics_id, execution_id in producer.items()
            if execution_id in examples_of_execution}
