"""The report's model card: intended use, data, metrics and limitations, filled in from
the run's facts (pipeline.report.facts) so that it describes this model, not models
in general."""

from __future__ import annotations

import math
from typing import Optional

from components.contract import CLASS_NAMES, IMAGE_HEIGHT, IMAGE_WIDTH, TEST_SPLIT, TRAIN_SPLIT

INTENDED_USE = (
    f"Classifies {IMAGE_WIDTH}x{IMAGE_HEIGHT} colour photos into the ten CIFAR-10 classes "
    f"({', '.join(CLASS_NAMES)}). It is trained and judged on CIFAR-10 only: a reference "
    "model for the pipeline and for serving, not for decisions about people or safety.")

_GENERAL_LIMITATIONS = [
    "Every image is one of the ten classes: the model has no 'none of these' answer and "
    "gives a confident class for anything, including images of other things.",
    f"Larger photos must be shrunk to {IMAGE_WIDTH}x{IMAGE_HEIGHT}; accuracy on "
    "photos unlike CIFAR-10's (other cameras, drawings, crops) is not measured here.",
]


def _percent(value: Optional[float]) -> str:
    return "not measured" if value is None else f"{100 * value:.2f}%"


def standard_error(accuracy: float, images: int) -> float:
    """Binomial standard error of an accuracy measured on `images` images."""
    return math.sqrt(accuracy * (1 - accuracy) / images) if images else float("nan")


def _data_lines(run: dict, data: dict, trained: bool) -> list:
    """What the model learnt from and was tested on. The Examples this run ingested are
    the newest span's; with a span window the model trained on more spans than that."""
    train = data["examples"].get(TRAIN_SPLIT, 0)
    test = data["examples"].get(TEST_SPLIT, 0)
    newest = (f"span {run['ingested_span']}" if run["ingested_span"] is not None
              else "the data")
    spans = run["training_spans"]
    if not trained:
        lines = [f"This run ingested {train:,} train and {test:,} test images ({newest}) "
                 f"from {run['data']} and trained no model on them."]
    elif len(spans) > 1:
        lines = [f"Trained on spans {', '.join(map(str, spans))} from {run['data']}; the "
                 f"newest, {newest}, holds {train:,} train images and the {test:,} test "
                 f"images it was tested on."]
    else:
        lines = [f"Trained on {train:,} images ({newest}) from {run['data']}; tested on "
                 f"{test:,} held-out images."]
    counts = data["class_counts"].get(TRAIN_SPLIT)
    if counts and sum(counts):
        low, high = min(counts), max(counts)
        lines.append(f"Train images per class in {newest}: from {low:,} "
                     f"({CLASS_NAMES[counts.index(low)]}) to {high:,} "
                     f"({CLASS_NAMES[counts.index(high)]}).")
    return lines


def model_card(facts: dict) -> dict:
    data, training, evaluation = facts["data"], facts["training"], facts["evaluation"]
    run = facts["run"]
    card = {"intended_use": INTENDED_USE, "data": [], "metrics": [], "limitations": []}
    if data:
        card["data"] += _data_lines(run, data, trained=training is not None)
    else:
        card["data"].append("No data was ingested in this run.")
    if evaluation and evaluation.get("accuracy") is not None:
        accuracy, images = evaluation["accuracy"], evaluation.get("example_count", 0)
        error = standard_error(accuracy, images)
        card["metrics"].append(
            f"Test accuracy {_percent(accuracy)} on {images:,} images, measured on the "
            f"exported model as it is served, +/- {100 * 1.96 * error:.2f} points (95% "
            f"interval, binomial).")
        rated = [row for row in evaluation["per_class"] if row["accuracy"] is not None]
        if rated:
            worst = min(rated, key=lambda row: row["accuracy"])
            best = max(rated, key=lambda row: row["accuracy"])
            card["metrics"].append(
                f"Per class from {_percent(worst['accuracy'])} ({worst['name']}) to "
                f"{_percent(best['accuracy'])} ({best['name']}).")
            card["limitations"].append(
                f"Weakest class: {worst['name']} ({_percent(worst['accuracy'])} on "
                f"{worst['count']} test images).")
        if images and images < 10_000:
            card["limitations"].append(
                f"Measured on {images:,} test images only: each figure is uncertain by "
                f"about {100 * error:.1f} points (one standard error).")
    elif training:
        card["metrics"].append(
            f"Trainer's own test accuracy {_percent(training['metrics'].get('eval_accuracy'))}"
            f" (not evaluated by the Evaluator in this run).")
    else:
        card["metrics"].append("No model was trained in this run.")
    card["limitations"] += _GENERAL_LIMITATIONS
    return card
