"""What the report reads from the Evaluator's and the RegressionGate's outputs beyond
pipeline.decision's figures: the confusion matrix TFMA computed, and the test images
the candidate got most confidently wrong.

Each reader returns None when its output is not there (an Evaluator configured
without the plot, a gate that kept no predictions), so the page can say so.
"""

from __future__ import annotations

import os
from typing import List, Optional

from components.contract import GATE_PREDICTIONS_FILE, NUM_CLASSES


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


def confidently_wrong(blessing_uri: str, count: int) -> Optional[List[dict]]:
    """The `count` test images the candidate got wrong with the highest probability
    on its (wrong) answer, from the gate's predictions; None without them."""
    import numpy as np

    path = os.path.join(blessing_uri, GATE_PREDICTIONS_FILE)
    if not os.path.exists(path):
        return None
    with np.load(path) as predictions:
        image_ids = predictions["image_id"]
        labels = predictions["label"]
        probabilities = predictions["candidate_probabilities"]
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    return [{"image_id": str(image_ids[i]), "label": int(labels[i]),
             "predicted": int(predicted[i]), "confidence": float(confidence[i]),
             "label_probability": float(probabilities[i, labels[i]])} for i in wrong]
