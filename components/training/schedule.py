"""Learning-rate schedules, evaluated per optimizer step, in `keras.ops` (any backend)."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class PiecewiseLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Linear interpolation between (step, value) knots; constant beyond the ends.

    cifar10-fast's schedule (dawn.py) is PiecewiseLinear([0, 5, 24] epochs, [0, 0.4, 0]),
    evaluated at every step (its `lr_schedule(step / len(train_batches))`).
    """

    def __init__(self, knot_steps: Sequence[float], values: Sequence[float]):
        if len(knot_steps) != len(values) or len(values) < 2:
            raise ValueError("PiecewiseLinear needs as many values as knots, at least 2")
        if any(b <= a for a, b in zip(knot_steps, knot_steps[1:])):
            raise ValueError(f"knot steps must increase: {list(knot_steps)}")
        self.knot_steps = [float(s) for s in knot_steps]
        self.values = [float(v) for v in values]

    def __call__(self, step):
        # The sum of the segments' ramps, each clipped to its own length: linear
        # between knots, constant before the first and after the last.
        step = ops.cast(step, "float32")
        rate = ops.convert_to_tensor(self.values[0], "float32")
        for start, end, low, high in zip(self.knot_steps, self.knot_steps[1:],
                                         self.values, self.values[1:]):
            rate = rate + (high - low) / (end - start) * ops.clip(step - start, 0.0,
                                                                  end - start)
        # Exactly the last value past the last knot (the sum leaves rounding, e.g. -1e-9).
        return ops.where(step >= self.knot_steps[-1], self.values[-1], rate)

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
