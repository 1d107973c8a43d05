"""The Trainer's hyperparameters: a typed schema for its custom_config["training"].

Kept free of TensorFlow imports so the pipeline config and CLI load fast.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from components.training.recipes import RECIPES

# Keys of the Trainer component's custom_config, written by the pipeline factory.
TRAINING_KEY = "training"  # a TrainingConfig as a dict (dataclasses.asdict)
BACKUP_ROOT_KEY = "backup_root"  # where backups outlive a killed execution
WARM_START_FROM_KEY = "warm_start_from"  # a TF Serving model base path


# The values each named setting takes: checked when the config loads, before any work.
CHOICES = {
    "model": tuple(sorted({recipe["model"] for recipe in RECIPES.values()})),
    "optimizer": ("sgd", "torch_sgd"),
    "loss_reduction": ("mean", "sum"),
    "kernel_initializer": ("torch_default", "he_uniform"),
    "lr_schedule": ("piecewise_linear", "step"),
    "device": ("auto", "gpu", "cpu"),
    "mixed_precision": ("auto", "off", "float16", "bfloat16"),
    "xla": ("auto", "on", "off"),
    "distribution": ("default", "mirrored", "multi_worker_mirrored"),
}


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The Trainer's settings. The recipe's fields come first and have no defaults:
    each recipe states all of them (`components/training/recipes.py`, through
    `training_config`). The machine's and the run's follow, with their defaults."""

    # --- The recipe.
    # resnet9 | airbench94 | resnet20 | resnet56 | resnet110 | plain20 | plain56 | plain110
    model: str
    # A fraction stops inside the last epoch: ceil(epochs x steps per epoch) steps.
    epochs: float
    # Global batch: with several devices each gets batch_size / devices.
    batch_size: int
    # piecewise_linear: knots in epochs, linear in between, evaluated per step.
    # step: knots are step boundaries where the rate drops to the next value.
    lr_schedule: str
    lr_knots: Tuple[float, ...]
    lr_values: Tuple[float, ...]
    # sgd: Keras's SGD, the decay an L2 penalty in the model (the gradient of
    # weight_decay / 2 x w^2 on the loss). torch_sgd: PyTorch's SGD arithmetic
    # (components/training/optimizer.py): the decay added to the gradient before the
    # momentum, per-group rates (bias_lr_scale), lookahead.
    optimizer: str
    momentum: float
    nesterov: bool
    # PyTorch SGD's weight_decay: weight_decay x w added to each weight's gradient.
    weight_decay: float
    # torch_sgd: BatchNorm biases train at this multiple of the rate, with
    # weight_decay / bias_lr_scale, so that their decay per step is the others'.
    bias_lr_scale: float
    label_smoothing: float
    # mean | sum: the batch's loss is the mean or the sum over its images.
    loss_reduction: str
    # torch_sgd: every N steps the weights (BatchNorm statistics included) move to
    # their running average, kept with decay lookahead_decay^N x (step / steps)^3, and
    # the model ends on the average. 0: off.
    lookahead_every: int
    lookahead_decay: float
    # airbench94: its whitening layer's bias trains in the first N epochs only.
    whiten_bias_epochs: float
    # The conv and dense kernels: torch_default (PyTorch's default, as in
    # cifar10-fast) | he_uniform. He et al.'s models keep their paper's he_normal.
    kernel_initializer: str
    # Stop after this many steps in all (None: epochs x steps per epoch).
    max_steps: Optional[int]
    # Augmentation: reflect-pad + random crop, horizontal flip, one square cutout.
    pad: int
    flip: bool
    # The flip of airbench: each image flipped at random in the first epoch (drawn
    # per image from the seed), then the other way round on every other epoch.
    alternating_flip: bool
    cutout: int
    # Test-time augmentation inside the exported model (components/training/tta.py):
    # the logits averaged with the mirror image's, and with tta_translate, also over
    # the image shifted diagonally by that many pixels each way (and their mirrors).
    tta_flip: bool
    tta_translate: int

    # --- The machine.
    # auto: the GPU when TensorFlow sees one, else the CPU. gpu: stop unless there is
    # one. cpu: train on the CPU on purpose (a machine whose GPU TensorFlow cannot use
    # otherwise stops before the first component, exit 2).
    device: str = "auto"
    # Optimizer steps per compiled execution: the host waits for the device once per
    # execution, not once per step. With a step limit (max_steps, or a fraction of an
    # epoch) it shrinks to a divisor of it and of the steps per epoch, so the stop is
    # exact.
    steps_per_execution: int = 16
    # auto: float16 compute with float32 variables and BatchNorm and loss scaling on
    # a GPU; bfloat16 compute on a CPU with bfloat16 instructions where it times faster
    # than float32 (device.cpu_bfloat16_pays_off), float32 on other CPUs.
    # off | float16 | bfloat16 force a policy.
    mixed_precision: str = "auto"
    # auto: XLA-compiled training step on a GPU only (measured 2x slower on the CPU).
    xla: str = "auto"
    # default (one device) | mirrored | multi_worker_mirrored
    distribution: str = "default"

    # --- The run.
    # Evaluate on the eval split after every epoch (the curves) or only at the end.
    eval_every_epoch: bool = True
    # metrics.json and the epoch lines report when the per-epoch eval accuracy (no TTA)
    # first reaches this (needs eval_every_epoch).
    target_accuracy: float = 0.94
    seed: Optional[int] = None

    def problem(self) -> str:
        """What is wrong with the settings, or "": each field's own values here; whether
        this machine can train where `device` says is known only on the machine that
        trains (components/training/runtime.py)."""
        for name, known in CHOICES.items():
            if getattr(self, name) not in known:
                return (f"training.{name}: {getattr(self, name)!r} unknown (known: "
                        f"{', '.join(known)})")
        for name in ("epochs", "batch_size", "steps_per_execution"):
            if not getattr(self, name) > 0:
                return f"training.{name}: must be > 0, got {getattr(self, name)}"
        if self.lr_schedule == "piecewise_linear" and (
                len(self.lr_knots) != len(self.lr_values) or len(self.lr_knots) < 2
                or list(self.lr_knots) != sorted(set(self.lr_knots))):
            return ("training.lr_knots and training.lr_values: piecewise_linear needs as "
                    "many values as knots, at least 2, the knots increasing")
        if self.lr_schedule == "step" and len(self.lr_values) != len(self.lr_knots) + 1:
            return ("training.lr_knots and training.lr_values: step needs one value more "
                    "than knots (the rate before the first)")
        if not 0.0 <= self.target_accuracy <= 1.0:
            return f"training.target_accuracy: must be within [0, 1], got {self.target_accuracy}"
        if self.lookahead_every and self.optimizer != "torch_sgd":
            return "training.lookahead_every: needs training.optimizer=torch_sgd"
        if (self.lookahead_every or self.alternating_flip) and self.distribution != "default":
            return (f"training.distribution: {self.distribution} does not run lookahead "
                    f"or the alternating flip (one device only); set "
                    f"training.lookahead_every=0 and training.alternating_flip=false")
        return ""


def training_config(recipe: str, **settings) -> TrainingConfig:
    """The named recipe (`recipes.RECIPES`) with `settings` replacing its fields or
    the machine's and the run's defaults."""
    if recipe not in RECIPES:
        raise ValueError(f"training recipe {recipe!r}: unknown (known: "
                         f"{', '.join(RECIPES)})")
    return TrainingConfig(**{**RECIPES[recipe], **settings})


def training_config_from_dict(values: dict) -> TrainingConfig:
    """The inverse of dataclasses.asdict, as the Trainer receives it (lists for tuples)."""
    known = {field.name for field in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"training settings: unknown {unknown}")
    return TrainingConfig(**{key: tuple(value) if isinstance(value, list) else value
                             for key, value in values.items()})
