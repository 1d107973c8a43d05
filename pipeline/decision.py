"""What the Evaluator and the RegressionGate decided, whether TF Serving can run the
model (the ServingLoadCheck or InfraValidator), and what the Pusher did, read from
their artifacts.

The metrics come from the Evaluator's own output (TFMA's metrics), the decision and
the paired comparison from the RegressionGate's result file, so a cached run reports
the same as a fresh one.
"""

from __future__ import annotations

import json
import os
import sys
from typing import List, Optional

from components.contract import (ALREADY_PUSHED_AS_PROPERTY, CLASS_NAMES, GATE_RESULT_FILE,
                                 LABEL_KEY, LOAD_CHECK_RESULT_FILE, NUM_CLASSES,
                                 TFLITE_CHECK_FILE)
from components.evaluation.eval_config import ACCURACY_METRIC
from components.uris import read_text


def _class_name(class_id: int) -> str:
    return CLASS_NAMES[class_id] if 0 <= class_id < len(CLASS_NAMES) else str(class_id)


def confusion_matrix(evaluation_uri: str) -> Optional[List[List[int]]]:
    """Rows: true class, columns: predicted class (the arg max), from TFMA's
    MultiClassConfusionMatrixPlot on the overall slice; None without that plot."""
    import tensorflow_model_analysis as tfma

    for plots_for_slice in tfma.load_plots(evaluation_uri):
        if plots_for_slice.slice_key.single_slice_keys:
            continue
        for key_and_value in plots_for_slice.plot_keys_and_values:
            if key_and_value.key.model_name not in ("", "candidate"):
                continue
            matrices = key_and_value.value.multi_class_confusion_matrix_at_thresholds.matrices
            if not matrices:
                continue
            # Threshold 0 (TFMA's default): every example counts under its arg max.
            matrix = min(matrices, key=lambda m: m.threshold)
            counts = [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
            for entry in matrix.entries:
                if 0 <= entry.actual_class_id < NUM_CLASSES and \
                        0 <= entry.predicted_class_id < NUM_CLASSES:
                    counts[entry.actual_class_id][entry.predicted_class_id] += int(
                        round(entry.num_weighted_examples))
            return counts
    return None


def _share(part: int, whole: int) -> Optional[float]:
    return part / whole if whole else None


def per_class_metrics(evaluation_uri: str) -> tuple:
    """(overall, per class) from TFMA's metrics: overall accuracy and example count;
    per class name, accuracy and count of its images (the label slice) and precision
    and recall of predicting it (one-vs-rest), from TFMA's confusion matrix: its
    binarized top-1 Precision/Recall count every image as predicted for a class that
    is never the arg max (recall 100%, precision its share of the test split)."""
    import tensorflow_model_analysis as tfma

    overall, per_class = {}, {name: {} for name in CLASS_NAMES}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        slice_keys = slice_metrics.slice_key.single_slice_keys
        for key_and_value in slice_metrics.metric_keys_and_values:
            key, value = key_and_value.key, key_and_value.value.double_value.value
            if key.is_diff or not key_and_value.value.HasField("double_value"):
                continue
            if not slice_keys and not key.HasField("sub_key"):
                overall[key.name] = value
            elif (len(slice_keys) == 1 and slice_keys[0].column == LABEL_KEY
                  and not key.HasField("sub_key")):
                per_class.setdefault(_class_name(int(slice_keys[0].int64_value)), {})[
                    key.name] = value
    matrix = confusion_matrix(evaluation_uri)
    for class_id, name in enumerate(CLASS_NAMES):
        if matrix is not None and per_class.get(name):
            right = matrix[class_id][class_id]
            per_class[name]["precision"] = _share(right, sum(row[class_id] for row in matrix))
            per_class[name]["recall"] = _share(right, sum(matrix[class_id]))
    rows = {name: {"accuracy": metrics.get(ACCURACY_METRIC),
                   "count": int(metrics.get("example_count", 0)),
                   "precision": metrics.get("precision"),
                   "recall": metrics.get("recall")}
            for name, metrics in per_class.items() if metrics}
    return ({"accuracy": overall.get(ACCURACY_METRIC),
             "example_count": int(overall.get("example_count", 0))}, rows)


def gate_result(blessing_uri: str) -> dict:
    """The RegressionGate's decision and the numbers behind it."""
    return json.loads(read_text(os.path.join(blessing_uri, GATE_RESULT_FILE)))


def evaluation_report(evaluation_uri: str, gate_blessing_uri: str) -> dict:
    """Blessed or not, why, the accuracy overall and per class, and the paired
    comparison with the baseline (the last blessed model) when there was one."""
    gate = gate_result(gate_blessing_uri)
    overall, per_class = per_class_metrics(evaluation_uri)
    comparison = gate.get("comparison")
    return {
        "blessed": gate["blessed"],
        "accuracy": overall["accuracy"],
        "example_count": overall["example_count"],
        "accuracy_threshold": gate["accuracy_threshold"],
        "baseline_model": (gate.get("baseline") or {}).get("model"),
        "baseline_accuracy": (gate.get("baseline") or {}).get("accuracy"),
        "comparison": comparison,
        "reasons": gate["reasons"],
        "per_class": per_class,
    }


def serving_check(components: dict) -> Optional[dict]:
    """Whether TF Serving can run the candidate, as the run checked it: the
    ServingLoadCheck's verdict (TF Serving's loader in a process of its own) or
    InfraValidator's blessing (TF Serving in Docker); None when neither ran."""
    from pipeline.pipeline import SERVING_LOAD_CHECK_ID, SERVING_LOAD_CHECK_OUTPUT

    load_check = components.get(SERVING_LOAD_CHECK_ID, {}).get("outputs", {})
    if SERVING_LOAD_CHECK_OUTPUT in load_check:
        path = os.path.join(load_check[SERVING_LOAD_CHECK_OUTPUT], LOAD_CHECK_RESULT_FILE)
        try:
            verdict = json.loads(read_text(path))
        except (OSError, ValueError) as error:
            return {"by": SERVING_LOAD_CHECK_ID, "ok": False,
                    "detail": f"its result {path} cannot be read: {error}"}
        return {"by": SERVING_LOAD_CHECK_ID, "ok": bool(verdict["ok"]), "detail": (
            f"TF Serving's loader ran it in {verdict['seconds']:.1f} s: "
            f"{verdict['warmup_requests']} warmup requests, signatures "
            f"{', '.join(verdict['signatures'])}" if verdict["ok"] else verdict["error"])}
    infra = components.get("InfraValidator", {}).get("properties", {}).get("blessing")
    if infra is not None:
        ok = infra.get("blessed") == 1
        return {"by": "InfraValidator", "ok": ok, "detail": (
            "TF Serving (Docker) loaded it and answered its requests" if ok else
            "TF Serving (Docker) could not load it or answer (InfraValidator's log)")}
    return None


def tflite_result(components: dict) -> Optional[dict]:
    """Each TFLite variant's check (accuracy, drop, size, passed or why not) and
    whether it was pushed; None when the run converted none."""
    from components.tflite.pusher import (PUSHED_DESTINATION_PROPERTY, PUSHED_PROPERTY,
                                          PUSHED_VARIANTS_PROPERTY)
    from pipeline.pipeline import (TFLITE_EXPORT_ID, TFLITE_EXPORT_OUTPUT, TFLITE_PUSHER_ID,
                                   TFLITE_PUSHER_OUTPUT)

    outputs = components.get(TFLITE_EXPORT_ID, {}).get("outputs", {})
    if TFLITE_EXPORT_OUTPUT not in outputs:
        return None
    try:
        check = json.loads(read_text(os.path.join(outputs[TFLITE_EXPORT_OUTPUT],
                                                  TFLITE_CHECK_FILE)))
    except (OSError, ValueError):
        return None
    push = components.get(TFLITE_PUSHER_ID, {}).get("properties", {}).get(
        TFLITE_PUSHER_OUTPUT, {})
    pushed = (set((push.get(PUSHED_VARIANTS_PROPERTY) or "").split(","))
              if push.get(PUSHED_PROPERTY) else set())
    for variant, outcome in check["variants"].items():
        outcome["pushed"] = variant in pushed
    check["pushed_destination"] = push.get(PUSHED_DESTINATION_PROPERTY) if pushed else None
    return check


def from_run_summary(run_summary: dict) -> Optional[dict]:
    """The decision of a run whose summary (pipeline.summary.latest_run) holds an
    Evaluator, a RegressionGate and a Pusher; None when the run stopped before them."""
    from pipeline.pipeline import (EVALUATOR_ID, PUSHER_ID, REGRESSION_GATE_ID,
                                   REGRESSION_GATE_OUTPUT)

    components = run_summary.get("components", {})
    evaluator, gate = components.get(EVALUATOR_ID), components.get(REGRESSION_GATE_ID)
    pusher = components.get(PUSHER_ID)
    if (not evaluator or "evaluation" not in evaluator["outputs"] or not gate
            or REGRESSION_GATE_OUTPUT not in gate["outputs"]):
        return None
    decision = evaluation_report(evaluator["outputs"]["evaluation"],
                                 gate["outputs"][REGRESSION_GATE_OUTPUT])
    push = (pusher or {}).get("properties", {}).get("pushed_model", {})
    decision["pushed"] = bool(push.get("pushed"))
    decision["pushed_version"] = push.get("pushed_version") if decision["pushed"] else None
    decision["pushed_destination"] = (push.get("pushed_destination")
                                      if decision["pushed"] else None)
    decision["already_pushed_as"] = push.get(ALREADY_PUSHED_AS_PROPERTY)
    decision["serving_check"] = serving_check(components)
    decision["tflite"] = tflite_result(components)
    if decision["serving_check"] and not decision["serving_check"]["ok"]:
        # The Pusher obeys both blessings: a model TF Serving cannot run is not blessed.
        decision["blessed"] = False
        decision["reasons"] = decision["reasons"] + [
            f"TF Serving cannot run it ({decision['serving_check']['by']}): "
            f"{decision['serving_check']['detail']}"]
    return decision


def _percent(value: Optional[float]) -> str:
    # NaN: a precision of a class nothing was predicted as.
    return "-" if value is None or value != value else f"{100 * value:.2f}%"


def print_decision(decision: dict, stream=None) -> None:
    stream = stream or sys.stdout
    verdict = "BLESSED" if decision["blessed"] else "NOT BLESSED"
    print(f"\nEvaluation on the test split ({decision.get('example_count', 0)} images): "
          f"{verdict}", file=stream)
    print(f"  accuracy {_percent(decision.get('accuracy'))}, threshold >= "
          f"{_percent(decision.get('accuracy_threshold'))}", file=stream)
    comparison = decision.get("comparison")
    if comparison:
        print(f"  baseline (last blessed model) {_percent(decision['baseline_accuracy'])}: "
              f"{decision['baseline_model']}", file=stream)
        print(f"  paired on {comparison['test_images']} images: candidate alone right on "
              f"{comparison['candidate_only_correct']}, baseline alone on "
              f"{comparison['baseline_only_correct']}; difference "
              f"{100 * comparison['accuracy_difference']:+.2f} points, one-sided p = "
              f"{comparison['p_value']:.3g} (a regression: p < "
              f"{1 - comparison['confidence']:.3g}, or a drop of more than "
              f"{100 * comparison['tolerance']:.2f} points)", file=stream)
    elif decision["baseline_model"] is None:
        print("  baseline: none (no blessed model yet), so only the threshold applies",
              file=stream)
    for reason in decision["reasons"]:
        print(f"  reason: {reason}", file=stream)
    check = decision.get("serving_check")
    if check and check["ok"]:
        print(f"  TF Serving can run it ({check['by']}): {check['detail']}", file=stream)
    print(f"  {'class':<12}{'accuracy':>10}{'precision':>10}{'recall':>10}{'images':>8}",
          file=stream)
    for name, row in decision["per_class"].items():
        print(f"  {name:<12}{_percent(row['accuracy']):>10}{_percent(row['precision']):>10}"
              f"{_percent(row['recall']):>10}{row['count']:>8}", file=stream)
    if decision["pushed"]:
        print(f"Pushed version {decision['pushed_version']} to "
              f"{decision['pushed_destination']}", file=stream)
    elif decision["already_pushed_as"]:
        print(f"Not pushed: this model already is version {decision['already_pushed_as']}",
              file=stream, flush=True)
    else:
        print("Not pushed: the served model is unchanged", file=stream, flush=True)
    print_tflite(decision.get("tflite"), stream)


def tflite_line(variant: str, outcome: dict) -> str:
    if "accuracy" not in outcome:
        return f"{variant}: {outcome['reason']}"
    return (f"{variant} {_percent(outcome['accuracy'])} ({outcome['size_bytes'] / 2**20:.1f} "
            f"MiB, {-100 * outcome['drop']:+.2f} points, agrees on "
            f"{_percent(outcome['agreement'])})"
            + ("" if outcome["passed"] else f": not passed, {outcome['reason']}"))


def print_tflite(tflite: Optional[dict], stream) -> None:
    if not tflite:
        return
    print(f"TFLite on the same {tflite['saved_model']['test_images']} test images (SavedModel "
          f"{_percent(tflite['saved_model']['accuracy'])}):", file=stream)
    for variant, outcome in tflite["variants"].items():
        print(f"  {tflite_line(variant, outcome)}", file=stream)
    pushed = [variant for variant, outcome in tflite["variants"].items() if outcome["pushed"]]
    print(f"  pushed {', '.join(pushed)} to {tflite['pushed_destination']}" if pushed
          else "  none pushed", file=stream, flush=True)
