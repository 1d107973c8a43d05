"""What a pipeline run did, read back from ML Metadata.

The orchestrator records every execution (run, or skipped as CACHED) and its output
artifacts in MLMD; the summary reports the latest run of one pipeline from there, so
it is the same whichever runner executed it.
"""

from __future__ import annotations

import json
import sys
from typing import Optional

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from components.contract import ALREADY_PUSHED_AS_PROPERTY
from components.tflite.pusher import (PUSHED_DESTINATION_PROPERTY, PUSHED_PROPERTY,
                                      PUSHED_VARIANTS_PROPERTY, PUSHED_VERSION_PROPERTY)
from pipeline.pipeline import TFLITE_PUSHER_OUTPUT

_STATE_NAMES = {
    value: name for name, value in metadata_store_pb2.Execution.State.items()
}


# Output artifacts whose custom properties record a decision: the blessing and the push.
_REPORTED_PROPERTIES = {
    "blessing": ("blessed", "baseline_model"),
    "pushed_model": ("pushed", "pushed_version", "pushed_destination",
                     ALREADY_PUSHED_AS_PROPERTY),
    TFLITE_PUSHER_OUTPUT: (PUSHED_PROPERTY, PUSHED_VERSION_PROPERTY, PUSHED_DESTINATION_PROPERTY,
                    PUSHED_VARIANTS_PROPERTY),
}


def _property_value(value):
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


def event_keys(event: metadata_store_pb2.Event) -> list:
    """The input or output keys an event records. MLMD keeps one event per artifact,
    execution and direction, so an artifact given under two keys (the Evaluator's
    candidate that is also its baseline) has one event whose path holds both keys."""
    return [step.key for step in event.path.steps if step.HasField("key")]


def _context(store, type_name: str, name: str):
    return store.get_context_by_type_and_name(type_name, name)


def latest_run(metadata_path: str, pipeline_name: str) -> Optional[dict]:
    """Components of the pipeline's latest run: state and output artifact URIs."""
    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(metadata_path))
    pipeline_context = _context(store, "pipeline", pipeline_name)
    if pipeline_context is None:
        return None
    executions = store.get_executions_by_context(pipeline_context.id)
    if not executions:
        return None
    run_contexts = {}
    for execution in executions:
        for context in store.get_contexts_by_execution(execution.id):
            if store.get_context_types_by_id([context.type_id])[0].name == "pipeline_run":
                run_contexts[context.id] = context
    latest = max(run_contexts.values(), key=lambda c: (c.create_time_since_epoch, c.id))
    run_executions = {e.id: e for e in store.get_executions_by_context(latest.id)}

    components = {}
    node_type = store.get_context_type("node")
    prefix = pipeline_name + "."
    for node_context in store.get_contexts_by_type(node_type.name):
        if not node_context.name.startswith(prefix):
            continue
        node_id = node_context.name[len(prefix):]
        node_execution_ids = [e.id for e in store.get_executions_by_context(node_context.id)
                              if e.id in run_executions]
        if not node_execution_ids:
            continue
        execution = run_executions[max(node_execution_ids)]
        events = store.get_events_by_execution_ids([execution.id])
        artifacts = {a.id: a for a in store.get_artifacts_by_id(
            [e.artifact_id for e in events])}
        outputs, inputs, properties = {}, {}, {}
        for event in events:
            if event.artifact_id not in artifacts:
                continue
            artifact = artifacts[event.artifact_id]
            if event.type == metadata_store_pb2.Event.INPUT:
                for key in event_keys(event):
                    inputs[key] = artifact.uri
                continue
            key = next(iter(event_keys(event)), str(event.artifact_id))
            if event.type in (metadata_store_pb2.Event.OUTPUT,
                              metadata_store_pb2.Event.DECLARED_OUTPUT):
                outputs[key] = artifact.uri
                if key in _REPORTED_PROPERTIES:
                    properties[key] = {
                        name: _property_value(artifact.custom_properties[name])
                        for name in _REPORTED_PROPERTIES[key]
                        if name in artifact.custom_properties}
        components[node_id] = {
            "state": _STATE_NAMES.get(execution.last_known_state, "UNKNOWN"),
            "seconds": round((execution.last_update_time_since_epoch
                              - execution.create_time_since_epoch) / 1000, 1),
            "outputs": outputs,
            "inputs": inputs,
        }
        if properties:
            components[node_id]["properties"] = properties
    return {"run_id": latest.name, "components": components}


def run_report(metadata_path: str, pipeline_name: str) -> dict:
    """The latest run's components, every anomaly ExampleValidator and
    LabelDriftValidator found, and
    what the Evaluator decided and the Pusher did (when the run got that far)."""
    from pipeline import decision

    from components.validation import anomalies

    report = latest_run(metadata_path, pipeline_name) or {}
    found = []
    from pipeline.pipeline import EXAMPLE_VALIDATOR_ID, VALIDATOR_OUTPUTS

    for validator, output_key in VALIDATOR_OUTPUTS.items():
        outputs = report.get("components", {}).get(validator, {}).get("outputs", {})
        if output_key in outputs:
            found += [{"validator": validator, **anomaly}
                      for anomaly in anomalies.describe(outputs[output_key])]
    if EXAMPLE_VALIDATOR_ID in report.get("components", {}):
        report["anomalies"] = found
    model_decision = decision.from_run_summary(report)
    if model_decision is not None:
        report["decision"] = model_decision
    return report


def print_report(run_summary: dict, stream=None, artifacts: bool = True) -> None:
    """Where every artifact is (unless `artifacts` is false: the console of a run with
    a log file leaves the list to the log and the report), what was decided, and the
    summary as one JSON line."""
    from pipeline import decision

    stream = stream or sys.stdout
    if artifacts:
        print("\nArtifacts of this run:", file=stream)
        for component, details in run_summary.get("components", {}).items():
            print(f"  {component} [{details['state']}, {details['seconds']} s]", file=stream)
            for key, uri in details["outputs"].items():
                print(f"    {key}: {uri}", file=stream)
    if "anomalies" in run_summary:
        print(f"\nData validation: {len(run_summary['anomalies']) or 'no'} anomalies",
              file=stream)
        for anomaly in run_summary["anomalies"]:
            print(f"  {anomaly['validator']}, split {anomaly['split']}, "
                  f"{anomaly['feature'] or 'dataset'}: "
                  f"{anomaly['description'] or anomaly['short']}", file=stream)
    if "decision" in run_summary:
        decision.print_decision(run_summary["decision"], stream)
    if "report" in run_summary:
        print(f"Report: {run_summary['report']}", file=stream)
    if "log" in run_summary:
        print(f"Log: {run_summary['log']}", file=stream)
    print(json.dumps(run_summary, sort_keys=True), file=stream, flush=True)
