"""TorchSGD against PyTorch's SGD written out by hand (torch.optim.SGD's documented
update, nesterov=True, with parameter groups), and airbench's lookahead."""

from __future__ import annotations

import keras
import numpy as np

from components.training.optimizer import TorchSGD
from components.training.schedule import PiecewiseLinear

MOMENTUM, DECAY, SCALE = 0.85, 1.3, 64.0
RATES = (0.01, 0.03, 0.02, 0.005)  # a rate that changes at every step


def _variables():
    weight = keras.Variable(np.array([1.0, -2.0, 0.5], "float32"), name="weight")
    bias = keras.Variable(np.array([0.3, -0.1], "float32"), name="bias")
    whiten_bias = keras.Variable(np.array([0.2], "float32"), name="whiten_bias")
    return [weight, bias, whiten_bias]


def _gradients(step: int) -> list:
    return [np.array([0.1, 0.2, -0.3]) * (step + 1), np.array([-0.5, 0.25]) / (step + 1),
            np.array([0.7])]


def _pytorch_sgd(values: list, steps: int, last_steps: dict) -> list:
    """torch.optim.SGD(momentum, nesterov=True, weight_decay per group): per step
    d = g + wd w; b = momentum b + d (b = d at first); w -= lr (d + momentum b)."""
    values = [np.array(v, "float64") for v in values]
    buffers = [None] * len(values)
    group_scale = [1.0, SCALE, 1.0]
    for step in range(steps):
        for index, gradient in enumerate(_gradients(step)):
            if step >= last_steps.get(index, steps):
                continue  # no gradient: PyTorch skips the weight entirely
            scale = group_scale[index]
            direction = gradient + DECAY / scale * values[index]
            buffers[index] = (direction if buffers[index] is None
                              else MOMENTUM * buffers[index] + direction)
            values[index] = values[index] - RATES[step] * scale * (
                direction + MOMENTUM * buffers[index])
    return values


def _schedule():
    # The rates above, one per step, as the per-step schedule gives them.
    return PiecewiseLinear([0, 1, 2, 3], list(RATES))


def test_steps_match_pytorch_sgd_with_groups_and_a_weight_that_stops():
    variables = _variables()
    initial = [v.numpy() for v in variables]
    optimizer = TorchSGD(_schedule(), momentum=MOMENTUM, nesterov=True,
                         coupled_weight_decay=DECAY, rate_scales={"bias": SCALE},
                         last_steps={"whiten_bias": 2})
    for step in range(4):
        optimizer.apply([keras.ops.convert_to_tensor(g, "float32") for g in _gradients(step)],
                        variables)

    expected = _pytorch_sgd(initial, 4, last_steps={2: 2})
    for variable, value in zip(variables, expected):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5)
    # The stopped weight's momentum is as it was after its last step.
    stopped_buffer = optimizer.momentums[2].numpy()
    after_two = TorchSGD(_schedule(), momentum=MOMENTUM, nesterov=True,
                         coupled_weight_decay=DECAY)
    fresh = keras.Variable(initial[2])
    for step in range(2):
        after_two.apply([keras.ops.convert_to_tensor(_gradients(step)[2], "float32")], [fresh])
    np.testing.assert_allclose(stopped_buffer, after_two.momentums[0].numpy(), rtol=1e-6)


def test_lookahead_averages_every_n_steps_and_the_model_ends_on_the_average():
    """airbench: after step k with k % every == 0, avg += (1 - decay_k)(w - avg),
    decay_k = decay^every (k / total)^3, and w = avg; at the end w = avg. The tracked
    extra (a BatchNorm statistic) moves with it though no gradient touches it."""
    every, decay, total = 2, 0.9, 5
    weight = keras.Variable(np.array([1.0, 2.0], "float32"), name="w")
    statistic = keras.Variable(np.array([0.0], "float32"), name="s", trainable=False)
    optimizer = TorchSGD(0.1, lookahead_every=every, lookahead_decay=decay, total_steps=total)
    optimizer.track_in_lookahead([statistic])
    gradient = np.array([1.0, -1.0], "float32")

    w, avg = np.array([1.0, 2.0]), np.array([1.0, 2.0])
    s, s_avg = 0.0, 0.0
    for k in range(1, total + 1):
        optimizer.apply([keras.ops.convert_to_tensor(gradient)], [weight])
        statistic.assign(statistic.numpy() + 1.0)  # what the next forward pass does
        w = w - 0.1 * gradient
        if k % every == 0:
            blend = 1 - decay ** every * (k / total) ** 3
            avg = avg + blend * (w - avg)
            w = avg.copy()
            s_avg = s_avg + blend * (s - s_avg)
            s = s_avg
        s = s + 1.0
        np.testing.assert_allclose(weight.numpy(), w, rtol=1e-6)
    optimizer.finish()
    np.testing.assert_allclose(weight.numpy(), avg, rtol=1e-6)
    np.testing.assert_allclose(statistic.numpy(), [s_avg], rtol=1e-6)
