"""The Evaluator's TFMA configuration: the absolute accuracy gate and the figures the
run report shows.

TFMA calls the exported model's `serving_examples` signature on the raw test split
(the ExampleGen output, PNG bytes), so the gate measures exactly what is served,
Transform graph and flip test-time augmentation included.

The comparison with the last blessed model is not here: TFMA compares aggregate
metrics only, and a difference of accuracies on 10,000 images is within noise unless
it is judged image by image. `components.evaluation.regression_gate` does that, after
the Evaluator, and its blessing is the one the Pusher obeys.
"""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.contract import EXAMPLES_SIGNATURE, LABEL_KEY, PROBABILITIES_OUTPUT

ACCURACY_METRIC = "sparse_categorical_accuracy"
CONFUSION_MATRIX_PLOT = "multi_class_confusion_matrix_plot"


def make_eval_config(accuracy_threshold: float) -> tfma.EvalConfig:
    """Blesses a model whose overall test accuracy is >= `accuracy_threshold`.

    Accuracy and example counts are computed overall and per true class, and the
    10x10 confusion matrix, from which pipeline.decision derives each class's
    precision and recall.
    The threshold applies to the overall slice only.
    """
    if not 0.0 <= accuracy_threshold <= 1.0:
        raise ValueError(f"accuracy_threshold must be within [0, 1], got {accuracy_threshold}")
    accuracy_threshold_spec = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": accuracy_threshold}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=EXAMPLES_SIGNATURE, label_key=LABEL_KEY,
                                    prediction_key=PROBABILITIES_OUTPUT)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[LABEL_KEY])],
        metrics_specs=[
            tfma.MetricsSpec(metrics=[
                # A plain `threshold` would apply to every slice, so every class would
                # have to pass the gate on its own; the gate is on the whole test split.
                tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                                  per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                                      slicing_specs=[tfma.SlicingSpec()],
                                      threshold=accuracy_threshold_spec)]),
                tfma.MetricConfig(class_name="ExampleCount"),
                tfma.MetricConfig(class_name="MultiClassConfusionMatrixPlot"),
            ]),
        ],
    )
