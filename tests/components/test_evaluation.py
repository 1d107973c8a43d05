"""The Evaluator's TFMA config: the gate applies to the whole test split only."""

from __future__ import annotations

import pytest
import tensorflow_model_analysis as tfma

from components.contract import LABEL_KEY
from components.evaluation import ACCURACY_METRIC, make_eval_config


def test_the_accuracy_gate_applies_to_the_overall_slice_only():
    eval_config = make_eval_config(0.94, 0.002)
    tfma.utils.verify_eval_config(eval_config)
    thresholds = tfma.metrics.metric_thresholds_from_metrics_specs(
        eval_config.metrics_specs, eval_config=eval_config)
    # One key for the value, one (is_diff) for the change against the baseline.
    keys = {key.is_diff: key for key in thresholds if key.name == ACCURACY_METRIC}
    assert set(keys) == {False, True}
    for key in keys.values():
        assert [slice_spec for slice_spec, _ in thresholds[key]] == [tfma.SlicingSpec()]
    ((_, value),) = thresholds[keys[False]]
    ((_, change),) = thresholds[keys[True]]
    assert value.lower_bound.value == pytest.approx(0.94)
    assert change.absolute.value == pytest.approx(-0.002)
    assert change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    # Per class is reported, not gated.
    assert tfma.SlicingSpec(feature_keys=[LABEL_KEY]) in eval_config.slicing_specs


@pytest.mark.parametrize("threshold, drop", [(1.5, 0.0), (-0.1, 0.0), (0.9, -0.01)])
def test_out_of_range_settings_are_refused(threshold, drop):
    with pytest.raises(ValueError):
        make_eval_config(threshold, drop)
