"""PyTorch's SGD arithmetic as a Keras 3 optimizer, with airbench94's lookahead
(`training.optimizer=torch_sgd`), in `keras.ops` only (any backend).

Per weight w with gradient g, at rate lr x its group's scale s (torch.optim.SGD with
parameter groups, nesterov=True):

    d = g + (weight_decay / s) x w        the coupled decay, before the momentum
    b = momentum x b + d                  (PyTorch starts b at d: the same from zeros)
    w = w - lr x s x (d + momentum x b)   Nesterov; without it, w - lr x s x b

Keras's SGD differs in two ways: its weight decay is decoupled (applied to w apart
from the gradient), and its Nesterov form folds the rate into the buffer, which departs
from PyTorch's wherever the rate changes. airbench's groups: the BatchNorm biases train
at 64x the rate with the decay / 64 (so their decay per step is the others'); the
whitening bias stops after its epochs: from that step on it gets no update at all (no
gradient, no decay, no momentum), as PyTorch skips a weight without a gradient.

Lookahead (airbench94's LookaheadState): after every `lookahead_every`-th step k, each
tracked weight's average moves towards it, `avg += (1 - decay_k) (w - avg)` with
decay_k = lookahead_decay^every x (k / total_steps)^3, and the weight takes the
average. The averages start at the initial weights. `finish()` puts the averages into
the model, as airbench's last update (decay 1) does. It runs inside the training step,
so it counts steps across epochs whatever `steps_per_execution` is.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import keras
from keras import ops


class _Untracked:
    """Holds model variables out of the optimizer's tracker, which would otherwise
    adopt them as optimizer state."""

    def __init__(self, variables: Sequence):
        self.variables = tuple(variables)


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class TorchSGD(keras.optimizers.Optimizer):

    def __init__(self, learning_rate, momentum: float = 0.0, nesterov: bool = False,
                 coupled_weight_decay: float = 0.0,
                 rate_scales: Optional[Dict[str, float]] = None,
                 last_steps: Optional[Dict[str, int]] = None,
                 lookahead_every: int = 0, lookahead_decay: float = 0.0,
                 total_steps: int = 1, name: str = "torch_sgd", **kwargs):
        """`rate_scales`: variable path -> its group's rate multiple. `last_steps`:
        variable path -> the number of steps it trains for."""
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum, self.nesterov = momentum, nesterov
        self.coupled_weight_decay = coupled_weight_decay
        self.rate_scales = dict(rate_scales or {})
        self.last_steps = dict(last_steps or {})
        self.lookahead_every, self.lookahead_decay = lookahead_every, lookahead_decay
        self.total_steps = total_steps
        self._lookahead_extra = _Untracked(())

    def track_in_lookahead(self, variables: Sequence) -> None:
        """Weights the lookahead averages besides the trained ones (BatchNorm's
        running statistics); before the first step."""
        self._lookahead_extra = _Untracked(variables)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")
        # By index: update_step may receive the backend's variable, which has no path.
        self._scales = [self.rate_scales.get(variable.path, 1.0) for variable in variables]
        self._last_steps = [self.last_steps.get(variable.path) for variable in variables]
        self._lookahead_targets = _Untracked(())
        self.averages = []
        if self.lookahead_every:
            targets = list(variables) + list(self._lookahead_extra.variables)
            self._lookahead_targets = _Untracked(targets)
            # The averages start at the weights as they are now (airbench copies the
            # state dict before the first step).
            self.averages = [self.add_variable_from_reference(
                target, "lookahead", initializer=_CopyOf(target)) for target in targets]

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        scale = self._scales[index]
        rate = ops.cast(learning_rate * scale, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        buffer = self.momentums[index]
        current_buffer = ops.convert_to_tensor(buffer)  # JAX's where takes no variable
        direction = gradient + (self.coupled_weight_decay / scale) * variable
        new_buffer = self.momentum * current_buffer + direction
        step = direction + self.momentum * new_buffer if self.nesterov else new_buffer
        last_step = self._last_steps[index]
        if last_step is not None:
            training = ops.less(self.iterations, last_step)
            new_buffer = ops.where(training, new_buffer, current_buffer)
            step = ops.where(training, step, ops.zeros_like(step))
        self.assign(buffer, new_buffer)
        self.assign_sub(variable, rate * step)

    def apply(self, grads, trainable_variables=None):
        super().apply(grads, trainable_variables)
        if self.lookahead_every:
            self._lookahead()

    def _lookahead(self) -> None:
        """Branch-free, so that it compiles alike on every backend: on other steps
        the weight of the new value is 0 and nothing moves."""
        step = ops.cast(self.iterations, "float32")  # counted up by apply: k
        due = ops.equal(self.iterations % self.lookahead_every, 0)
        decay = self.lookahead_decay ** self.lookahead_every * (step / self.total_steps) ** 3
        blend = ops.where(due, 1.0 - decay, 0.0)
        for average, target in zip(self.averages, self._lookahead_targets.variables):
            current = ops.convert_to_tensor(target)
            new_average = average + ops.cast(blend, average.dtype) * (current - average)
            self.assign(average, new_average)
            target.assign(ops.where(due, new_average, current))

    def finish(self) -> None:
        """The model ends on the averages (airbench's final update with decay 1)."""
        for average, target in zip(self.averages, self._lookahead_targets.variables):
            target.assign(ops.copy(ops.convert_to_tensor(average)))  # a buffer of its own

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum,
                "nesterov": self.nesterov, "coupled_weight_decay": self.coupled_weight_decay,
                "rate_scales": self.rate_scales, "last_steps": self.last_steps,
                "lookahead_every": self.lookahead_every,
                "lookahead_decay": self.lookahead_decay, "total_steps": self.total_steps}


class _CopyOf(keras.initializers.Initializer):
    """The value `variable` holds now, in a buffer of its own (JAX donates each
    variable's buffer to the step: two variables must not share one)."""

    def __init__(self, variable):
        self.variable = variable

    def __call__(self, shape, dtype=None):
        return ops.copy(ops.cast(ops.convert_to_tensor(self.variable),
                                 dtype or self.variable.dtype))
