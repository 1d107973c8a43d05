"""The facts of a pipeline's latest run, read from ML Metadata and the run's artifacts,
as one plain, JSON-serialisable dict: the charts and the page are made from it alone.

Every section is None when its component did not run in that run (a run blocked
before training, a partial run, a failure), so the page says so instead of failing.
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Optional

from components.contract import (CLASS_NAMES, SPAN_PROPERTY, TRAINING_CURVES_FILE,
                                 TRAINING_METRICS_FILE)
from components.uris import exists, read_text
from pipeline.pipeline import (DATA_GATE_ID, EVALUATOR_ID, EXAMPLE_GEN_ID,
                               REGRESSION_GATE_ID, REGRESSION_GATE_OUTPUT,
                               STATISTICS_GEN_ID, TRAINER_ID, TRANSFORM_ID,
                               VALIDATOR_OUTPUTS)

# How many of the most confidently wrong test images the page shows.
MISTAKES_SHOWN = 24


def _store(metadata_path: str):
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata

    return metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(metadata_path))


def _executions(store, pipeline_name: str, run_id: str) -> dict:
    """node id -> the run's (last) execution of that node."""
    run_context = store.get_context_by_type_and_name("pipeline_run", run_id)
    node_type_id = store.get_context_type("node").id
    prefix = pipeline_name + "."
    found = {}
    for execution in sorted(store.get_executions_by_context(run_context.id),
                            key=lambda e: e.id):
        for context in store.get_contexts_by_execution(execution.id):
            if context.type_id == node_type_id and context.name.startswith(prefix):
                found[context.name[len(prefix):]] = execution
    return found


def _input_spans(store, execution, key: str) -> list:
    """Spans of the Examples artifacts an execution read under `key`."""
    from pipeline.summary import event_keys

    ids = [event.artifact_id for event in store.get_events_by_execution_ids([execution.id])
           if key in event_keys(event)]
    return sorted({artifact.custom_properties[SPAN_PROPERTY].int_value
                   for artifact in store.get_artifacts_by_id(ids)
                   if SPAN_PROPERTY in artifact.custom_properties})


def _output_span(store, component: dict) -> Optional[int]:
    """The span of the Examples an ExampleGen published (a cached one's too, whose
    execution records no span of its own)."""
    uri = component.get("outputs", {}).get("examples")
    for artifact in store.get_artifacts_by_uri(uri) if uri else []:
        if SPAN_PROPERTY in artifact.custom_properties:
            return artifact.custom_properties[SPAN_PROPERTY].int_value
    return None


def _run_facts(store, run: dict, executions: dict, pipeline_name: str,
               profile: Optional[str]) -> dict:
    ordered = sorted(executions.items(), key=lambda item: item[1].id)
    example_gen = executions.get(EXAMPLE_GEN_ID)
    started = min(e.create_time_since_epoch for e in executions.values())
    ended = max(e.last_update_time_since_epoch for e in executions.values())
    transform = executions.get(TRANSFORM_ID)
    return {
        "id": run["run_id"],
        "pipeline": pipeline_name,
        "profile": profile,
        "data": (example_gen.custom_properties["input_base"].string_value
                 if example_gen and "input_base" in example_gen.custom_properties else None),
        "ingested_span": _output_span(store, run["components"].get(EXAMPLE_GEN_ID, {})),
        "training_spans": _input_spans(store, transform, "examples") if transform else [],
        "started": datetime.datetime.fromtimestamp(started / 1000, datetime.timezone.utc)
        .strftime("%Y-%m-%d %H:%M:%S UTC"),
        "seconds": round((ended - started) / 1000, 1),
        "components": [{"name": name, "state": run["components"][name]["state"],
                        "seconds": run["components"][name]["seconds"]}
                       for name, _ in ordered if name in run["components"]],
        "failed": [name for name, _ in ordered
                   if run["components"].get(name, {}).get("state") == "FAILED"],
    }


def _anomalies(components: dict) -> Optional[list]:
    """Every anomaly the validators found, or None when no validator ran."""
    from components.validation.anomalies import describe

    found, ran = [], False
    for node, output_key in VALIDATOR_OUTPUTS.items():
        uri = components.get(node, {}).get("outputs", {}).get(output_key)
        if uri:
            ran = True
            found += [{"component": node, **anomaly} for anomaly in describe(uri)]
    return found if ran else None


def _data_facts(components: dict) -> Optional[dict]:
    from pipeline.report import examples

    examples_uri = components.get(EXAMPLE_GEN_ID, {}).get("outputs", {}).get("examples")
    if not examples_uri:
        return None
    counts = examples.class_counts(examples_uri)
    return {
        "examples_uri": examples_uri,
        "examples": {split: sum(per_class) for split, per_class in counts.items()},
        "class_counts": counts,
        "anomalies": _anomalies(components),
        "statistics_uri": components.get(STATISTICS_GEN_ID, {}).get("outputs", {}).get(
            "statistics"),
    }


def _training_facts(components: dict) -> Optional[dict]:
    run_dir = components.get(TRAINER_ID, {}).get("outputs", {}).get("model_run")
    if not run_dir or not exists(os.path.join(run_dir, TRAINING_METRICS_FILE)):
        return None
    metrics = json.loads(read_text(os.path.join(run_dir, TRAINING_METRICS_FILE)))
    metrics.pop("history", None)  # drawn in the curves
    curves = os.path.join(run_dir, TRAINING_CURVES_FILE)
    return {"model_run": run_dir, "metrics": metrics,
            "curves": curves if exists(curves) else None}


def _per_class(decision: dict, matrix: Optional[list]) -> list:
    """One row per class, in class id order, also for a class the test split lacks;
    `predicted`: how many test images the model gave that class (None: no matrix)."""
    empty = {"count": 0, "accuracy": None, "precision": None, "recall": None}
    return [{"class_id": class_id, "name": name,
             **{**empty, **decision["per_class"].get(name, {})},
             "predicted": sum(row[class_id] for row in matrix) if matrix else None}
            for class_id, name in enumerate(CLASS_NAMES)]


def _evaluation_facts(run: dict) -> Optional[dict]:
    """The Evaluator's figures and the RegressionGate's decision (pipeline.decision),
    with TFMA's confusion matrix and the most confidently wrong test images."""
    from pipeline import decision as decisions
    from pipeline.report import evaluation

    decision = decisions.from_run_summary(run)
    if decision is None:
        return None
    components = run["components"]
    evaluation_uri = components[EVALUATOR_ID]["outputs"]["evaluation"]
    gate_blessing = components[REGRESSION_GATE_ID]["outputs"][REGRESSION_GATE_OUTPUT]
    matrix = decisions.confusion_matrix(evaluation_uri)
    return {
        **decision,
        "per_class": _per_class(decision, matrix),
        "confusion_matrix": matrix,
        "gate": decisions.gate_result(gate_blessing),
        "mistakes": evaluation.confidently_wrong(gate_blessing, MISTAKES_SHOWN),
    }


def _verdict(facts: dict) -> str:
    """One line: how the run ended."""
    run, data, evaluation = facts["run"], facts["data"], facts["evaluation"]
    anomalies = (data or {}).get("anomalies") or []
    if DATA_GATE_ID in run["failed"] or (facts["training"] is None and anomalies):
        return (f"Stopped before training by {len(anomalies)} data anomal"
                f"{'y' if len(anomalies) == 1 else 'ies'}: nothing trained or pushed")
    if run["failed"]:
        return f"Failed in {', '.join(run['failed'])}: nothing pushed"
    if evaluation is None:
        return "Stopped before evaluation" if facts["training"] else \
            "Stopped before training"
    if evaluation["pushed"]:
        return f"Pushed as version {evaluation['pushed_version']}"
    if evaluation.get("already_pushed_as"):
        return f"Not pushed: already served as version {evaluation['already_pushed_as']}"
    check = evaluation.get("serving_check")
    if check and not check["ok"]:
        return f"Not pushed: TF Serving cannot run the model ({check['by']})"
    return ("Blessed, not pushed" if evaluation["blessed"]
            else "Not blessed: the served model is unchanged")


def gather(metadata_path: str, pipeline_name: str, profile: Optional[str] = None,
           started_after_ms: Optional[int] = None) -> Optional[dict]:
    """The facts of the pipeline's latest run; None when MLMD holds no run of it, or
    none whose first execution started at or after `started_after_ms`."""
    from pipeline import summary

    if not os.path.exists(metadata_path):
        return None
    run = summary.latest_run(metadata_path, pipeline_name)
    if not run:
        return None
    store = _store(metadata_path)
    executions = _executions(store, pipeline_name, run["run_id"])
    if started_after_ms is not None and min(
            e.create_time_since_epoch for e in executions.values()) < started_after_ms:
        return None
    facts = {
        "class_names": list(CLASS_NAMES),
        "run": _run_facts(store, run, executions, pipeline_name, profile),
        "data": _data_facts(run["components"]),
        "training": _training_facts(run["components"]),
        "evaluation": _evaluation_facts(run),
    }
    facts["verdict"] = _verdict(facts)
    return facts
