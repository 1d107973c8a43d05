"""The one figure worth a glance when a component finishes, read from what it wrote:
examples per split, anomalies, accuracy, the blessing, the pushed version.

A component's entry in a run summary (`pipeline.summary.latest_run`) is all it needs,
so a cached execution shows the same figure as a fresh one.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Dict

from components.contract import TRAINING_METRICS_FILE
from components.uris import read_text
from pipeline.pipeline import (EVALUATOR_ID, EXAMPLE_GEN_ID, PUSHER_ID, REGRESSION_GATE_ID,
                               REGRESSION_GATE_OUTPUT, SERVING_LOAD_CHECK_ID,
                               STATISTICS_GEN_ID, TFLITE_EXPORT_ID, TFLITE_PUSHER_ID,
                               TFLITE_PUSHER_OUTPUT, TRAINER_ID, VALIDATOR_OUTPUTS)


def _per_split(counts: Dict[str, int]) -> str:
    return ", ".join(f"{split} {count}" for split, count in counts.items())


def _examples_written(component: dict) -> str:
    from pipeline.report.examples import class_counts

    counts = {split: sum(per_class) for split, per_class in
              class_counts(component["outputs"]["examples"]).items()}
    return f"examples written: {_per_split(counts)}"


def _statistics(component: dict) -> str:
    from components.data.split_files import split_names, split_statistics

    statistics_uri = component["outputs"]["statistics"]
    counts = {}
    for split in split_names(statistics_uri):
        statistics = split_statistics(statistics_uri, split)
        if statistics is not None and statistics.datasets:
            counts[split] = statistics.datasets[0].num_examples
    return f"statistics of {_per_split(counts)} examples"


def _anomalies(output_key: str) -> Callable[[dict], str]:
    def figure(component: dict) -> str:
        from components.validation.anomalies import describe

        found = len(describe(component["outputs"][output_key]))
        return f"{found or 'no'} anomal{'y' if found == 1 else 'ies'}"
    return figure


def _training(component: dict) -> str:
    metrics = json.loads(read_text(os.path.join(component["outputs"]["model_run"],
                                                TRAINING_METRICS_FILE)))
    figure = f"eval accuracy {100 * metrics['eval_accuracy']:.2f}%"
    if metrics.get("eval_accuracy_tta_flip") is not None:
        figure += f", with TTA {100 * metrics['eval_accuracy_tta_flip']:.2f}%"
    return figure


def _evaluation(component: dict) -> str:
    from pipeline.decision import per_class_metrics

    overall, _ = per_class_metrics(component["outputs"]["evaluation"])
    blessed = component.get("properties", {}).get("blessing", {}).get("blessed")
    return (f"accuracy {100 * overall['accuracy']:.2f}% on {overall['example_count']} test "
            f"images, {'BLESSED' if blessed == 1 else 'NOT BLESSED'} by TFMA's threshold")


def _serving_check(component: dict) -> str:
    from pipeline.decision import serving_check

    check = serving_check({SERVING_LOAD_CHECK_ID: component})
    return ("TF Serving's loader runs it" if check["ok"]
            else f"TF Serving cannot run it: {check['detail']}")


def _gate(component: dict) -> str:
    from pipeline.decision import gate_result

    gate = gate_result(component["outputs"][REGRESSION_GATE_OUTPUT])
    if gate["blessed"]:
        return "BLESSED"
    return f"NOT BLESSED: {'; '.join(gate['reasons'])}"


def _push(component: dict) -> str:
    pushed = component.get("properties", {}).get("pushed_model", {})
    return (f"pushed version {pushed.get('pushed_version')}" if pushed.get("pushed")
            else "not pushed")


def _tflite(component: dict) -> str:
    from pipeline.decision import tflite_line, tflite_result

    check = tflite_result({TFLITE_EXPORT_ID: component})
    return "; ".join(tflite_line(variant, outcome)
                     for variant, outcome in check["variants"].items()) if check else ""


def _tflite_push(component: dict) -> str:
    from components.tflite.pusher import (PUSHED_PROPERTY, PUSHED_VARIANTS_PROPERTY,
                                          PUSHED_VERSION_PROPERTY)

    pushed = component.get("properties", {}).get(TFLITE_PUSHER_OUTPUT, {})
    return (f"pushed {pushed.get(PUSHED_VARIANTS_PROPERTY)} as version "
            f"{pushed.get(PUSHED_VERSION_PROPERTY)}" if pushed.get(PUSHED_PROPERTY)
            else "nothing pushed")


_FIGURES: Dict[str, Callable[[dict], str]] = {
    EXAMPLE_GEN_ID: _examples_written,
    STATISTICS_GEN_ID: _statistics,
    **{node: _anomalies(output_key) for node, output_key in VALIDATOR_OUTPUTS.items()},
    TRAINER_ID: _training,
    EVALUATOR_ID: _evaluation,
    SERVING_LOAD_CHECK_ID: _serving_check,
    REGRESSION_GATE_ID: _gate,
    PUSHER_ID: _push,
    TFLITE_EXPORT_ID: _tflite,
    TFLITE_PUSHER_ID: _tflite_push,
}


def key_figure(node_id: str, component: dict) -> str:
    """The figure for a finished component, '' when it has none or wrote nothing to
    read it from."""
    figure = _FIGURES.get(node_id)
    return figure(component) if figure is not None and component.get("outputs") else ""
