"""Learning-rate schedules, evaluated per optimizer step."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class PiecewiseLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Linear interpolation between (step, value) knots; constant beyond the ends.

    cifar10-fast's schedule is PiecewiseLinear([0, 5, 24] epochs, [0.08, 0.4, 0]),
    evaluated at every step rather than once per epoch.
    """

    def __init__(self, knot_steps: Sequence[float], values: Sequence[float]):
        if len(knot_steps) != len(values) or len(values) < 2:
            raise ValueError("PiecewiseLinear needs as many values as knots, at least 2")
        if any(b <= a for a, b in zip(knot_steps, knot_steps[1:])):
            raise ValueError(f"knot steps must increase: {list(knot_steps)}")
        self.knot_steps = [float(s) for s in knot_steps]
        self.values = [float(v) for v in values]

    def __call__(self, step):
        knots = tf.constant(self.knot_steps, tf.float32)
        values = tf.constant(self.values, tf.float32)
        step = tf.clip_by_value(tf.cast(step, tf.float32), knots[0], knots[-1])
        right = tf.clip_by_value(tf.searchsorted(knots, step[None], side="right")[0],
                                 1, len(self.knot_steps) - 1)
        left = right - 1
        fraction = (step - knots[left]) / (knots[right] - knots[left])
        return values[left] + fraction * (values[right] - values[left])

    def numpy(self, step: float) -> float:
        return float(np.interp(step, self.knot_steps, self.values))

    def get_config(self):
        return {"knot_steps": self.knot_steps, "values": self.values}


def make_schedule(kind: str, steps_per_epoch: int, knots: Sequence[float],
                  values: Sequence[float]) -> keras.optimizers.schedules.LearningRateSchedule:
    """`piecewise_linear`: knots in epochs. `step`: knots are the step boundaries at
    which the rate drops to the next value (He et al.: 0.1, /10 at 32k and 48k)."""
    if kind == "piecewise_linear":
        return PiecewiseLinear([k * steps_per_epoch for k in knots], values)
    if kind == "step":
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            [int(k) for k in knots], [float(v) for v in values])
    raise ValueError(f"lr schedule {kind!r}: unknown (known: piecewise_linear, step)")
