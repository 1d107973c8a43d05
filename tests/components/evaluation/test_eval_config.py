"""The Evaluator's TFMA config: the gate applies to the whole test split only."""

from __future__ import annotations

import pytest
import tensorflow_model_analysis as tfma

from components.contract import LABEL_KEY
from components.evaluation.eval_config import ACCURACY_METRIC, make_eval_config


def test_the_accuracy_gate_applies_to_the_overall_slice_only():
    eval_config = make_eval_config(0.94)
    tfma.utils.verify_eval_config(eval_config)
    thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(
        eval_config.metrics_specs, eval_config=eval_config)
    # The value alone: the comparison with the baseline is the RegressionGate's.
    (key,) = [key for key in thresholds if key.name == ACCURACY_METRIC]
    assert not key.is_diff
    ((slice_spec, value),) = thresholds[key]
    assert slice_spec == tfma.SlicingSpec()
    assert value.lower_bound.value == pytest.approx(0.94)
    # Per class is reported, not gated.
    assert tfma.SlicingSpec(feature_keys=[LABEL_KEY]) in eval_config.slicing_specs


def test_the_confusion_matrix_behind_per_class_precision_and_recall_is_computed():
    eval_config = make_eval_config(0.5)
    names = {metric.class_name for spec in eval_config.metrics_specs for metric in spec.metrics}
    assert "MultiClassConfusionMatrixPlot" in names


@pytest.mark.parametrize("threshold", [1.5, -0.1])
def test_out_of_range_settings_are_refused(threshold):
    with pytest.raises(ValueError):
        make_eval_config(threshold)
