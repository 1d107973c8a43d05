"""What the Evaluator decided and what the Pusher did, read from their artifacts.

The metrics, thresholds and failures come from the Evaluator's own output (TFMA's
metrics, validation result and the eval config it ran with), so a cached Evaluator
reports the same as a fresh one.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

from components.contract import ALREADY_PUSHED_AS_PROPERTY, CLASS_NAMES, LABEL_KEY
from components.evaluation import ACCURACY_METRIC

_BASELINE_MODEL_NAME = "baseline"


def _thresholds(evaluation_uri: str) -> dict:
    with open(os.path.join(evaluation_uri, "eval_config.json")) as config_file:
        eval_config = json.load(config_file)["evalConfig"]
    for metrics_spec in eval_config.get("metricsSpecs", []):
        for metric in metrics_spec.get("metrics", []):
            per_slice = metric.get("perSliceThresholds", [{}])
            threshold = per_slice[0].get("threshold")
            if metric.get("className") == "SparseCategoricalAccuracy" and threshold:
                # Without a baseline the Evaluator drops the change threshold.
                change = threshold.get("changeThreshold", {})
                return {
                    "accuracy_threshold": threshold.get("valueThreshold", {}).get(
                        "lowerBound", 0.0),
                    "max_accuracy_drop": (-change["absolute"] if "absolute" in change
                                          else None),
                }
    return {}


def evaluation_report(evaluation_uri: str, blessing_uri: str,
                      baseline_model_uri: Optional[str]) -> dict:
    """Blessed or not, why, and the accuracy overall, per class and of the baseline."""
    import tensorflow_model_analysis as tfma

    report = {
        "blessed": os.path.exists(os.path.join(blessing_uri, "BLESSED")),
        "baseline_model": baseline_model_uri,
        "baseline_accuracy": None,
        "per_class": {},
        **_thresholds(evaluation_uri),
    }
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        slice_keys = slice_metrics.slice_key.single_slice_keys
        values = {}
        for key_and_value in slice_metrics.metric_keys_and_values:
            key = key_and_value.key
            if key.is_diff:
                continue
            model = ("baseline" if key.model_name == _BASELINE_MODEL_NAME else "candidate")
            values[(model, key.name)] = key_and_value.value.double_value.value
        accuracy = values.get(("candidate", ACCURACY_METRIC))
        count = int(values.get(("candidate", "example_count"), 0))
        if not slice_keys:
            report["accuracy"] = accuracy
            report["example_count"] = count
            report["baseline_accuracy"] = values.get(("baseline", ACCURACY_METRIC))
        elif len(slice_keys) == 1 and slice_keys[0].column == LABEL_KEY:
            label = int(slice_keys[0].int64_value)
            name = CLASS_NAMES[label] if 0 <= label < len(CLASS_NAMES) else str(label)
            report["per_class"][name] = {"accuracy": accuracy, "count": count}
    report["per_class"] = dict(sorted(report["per_class"].items(),
                                      key=lambda item: CLASS_NAMES.index(item[0])
                                      if item[0] in CLASS_NAMES else len(CLASS_NAMES)))
    validation = tfma.load_validation_result(evaluation_uri)
    report["reasons"] = [_failure_reason(failure)
                         for per_slice in validation.metric_validations_per_slice
                         for failure in per_slice.failures]
    return report


def _failure_reason(failure) -> str:
    if failure.message:
        return failure.message
    threshold = failure.metric_threshold
    if failure.metric_key.is_diff:
        return (f"{failure.metric_key.name} changed by {failure.metric_value.double_value.value:+.4f}"
                f" against the baseline, below the allowed "
                f"{threshold.change_threshold.absolute.value:+.4f}")
    return (f"{failure.metric_key.name} {failure.metric_value.double_value.value:.4f} is below "
            f"the threshold {threshold.value_threshold.lower_bound.value:.4f}")


def from_run_summary(run_summary: dict) -> Optional[dict]:
    """The decision of a run whose summary (pipeline.summary.latest_run) holds an
    Evaluator and a Pusher; None when the run stopped before them."""
    components = run_summary.get("components", {})
    evaluator, pusher = components.get("Evaluator"), components.get("Pusher")
    if not evaluator or "evaluation" not in evaluator["outputs"]:
        return None
    decision = evaluation_report(evaluator["outputs"]["evaluation"],
                                 evaluator["outputs"]["blessing"],
                                 evaluator.get("inputs", {}).get("baseline_model"))
    push = (pusher or {}).get("properties", {}).get("pushed_model", {})
    decision["pushed"] = bool(push.get("pushed"))
    decision["pushed_version"] = push.get("pushed_version") if decision["pushed"] else None
    decision["pushed_destination"] = (push.get("pushed_destination")
                                      if decision["pushed"] else None)
    decision["already_pushed_as"] = push.get(ALREADY_PUSHED_AS_PROPERTY)
    return decision


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def print_decision(decision: dict, stream=None) -> None:
    stream = stream or sys.stdout
    verdict = "BLESSED" if decision["blessed"] else "NOT BLESSED"
    print(f"\nEvaluation on the test split ({decision.get('example_count', 0)} images): "
          f"{verdict}", file=stream)
    print(f"  accuracy {_percent(decision.get('accuracy'))}, threshold >= "
          f"{_percent(decision.get('accuracy_threshold'))}", file=stream)
    if decision["baseline_model"]:
        print(f"  baseline (last blessed model) {_percent(decision['baseline_accuracy'])}, "
              f"allowed drop {_percent(decision.get('max_accuracy_drop'))}: "
              f"{decision['baseline_model']}", file=stream)
    else:
        print("  baseline: none (no blessed model yet), so only the threshold applies",
              file=stream)
    for reason in decision["reasons"]:
        print(f"  reason: {reason}", file=stream)
    print(f"  {'class':<12}{'accuracy':>10}{'images':>8}", file=stream)
    for name, row in decision["per_class"].items():
        print(f"  {name:<12}{_percent(row['accuracy']):>10}{row['count']:>8}", file=stream)
    if decision["pushed"]:
        print(f"Pushed version {decision['pushed_version']} to "
              f"{decision['pushed_destination']}", file=stream)
    elif decision["already_pushed_as"]:
        print(f"Not pushed: this model already is version {decision['already_pushed_as']}",
              file=stream, flush=True)
    else:
        print("Not pushed: the served model is unchanged", file=stream, flush=True)
