"""The Evaluator's TFMA configuration: the accuracy gate and the no-regression check.

TFMA calls the exported model's `serving_examples` signature on the raw test split
(the ExampleGen output, PNG bytes), so the gate measures exactly what is served,
Transform graph and flip test-time augmentation included.
"""

from __future__ import annotations

import tensorflow_model_analysis as tfma

from components.contract import EXAMPLES_SIGNATURE, LABEL_KEY, PROBABILITIES_OUTPUT

ACCURACY_METRIC = "sparse_categorical_accuracy"


def make_eval_config(accuracy_threshold: float, max_accuracy_drop: float) -> tfma.EvalConfig:
    """Blesses a model whose overall test accuracy is >= `accuracy_threshold` and, when
    a blessed baseline exists, at most `max_accuracy_drop` below the baseline's.

    Metrics are computed overall and per true class; the thresholds apply to the
    overall slice only.
    """
    if not 0.0 <= accuracy_threshold <= 1.0:
        raise ValueError(f"accuracy_threshold must be within [0, 1], got {accuracy_threshold}")
    if max_accuracy_drop < 0.0:
        raise ValueError(f"max_accuracy_drop must be >= 0, got {max_accuracy_drop}")
    accuracy_threshold_spec = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": accuracy_threshold}),
        # Candidate minus baseline must be >= -max_accuracy_drop. Without a baseline
        # (the first run) TFMA checks the value threshold alone.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -max_accuracy_drop}),
    )
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=EXAMPLES_SIGNATURE, label_key=LABEL_KEY,
                                    prediction_key=PROBABILITIES_OUTPUT)],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[LABEL_KEY])],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            # A plain `threshold` would apply to every slice, so every class would have
            # to pass the gate on its own; the gate is on the whole test split.
            tfma.MetricConfig(class_name="SparseCategoricalAccuracy",
                              per_slice_thresholds=[tfma.PerSliceMetricThreshold(
                                  slicing_specs=[tfma.SlicingSpec()],
                                  threshold=accuracy_threshold_spec)]),
            tfma.MetricConfig(class_name="ExampleCount"),
        ])],
    )
