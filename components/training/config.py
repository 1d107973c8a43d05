"""The Trainer's hyperparameters: a typed schema for its custom_config["training"].

Kept free of TensorFlow imports so the pipeline config and CLI load fast.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

# Keys of the Trainer component's custom_config, written by the pipeline factory.
TRAINING_KEY = "training"  # a TrainingConfig as a dict (dataclasses.asdict)
BACKUP_ROOT_KEY = "backup_root"  # where backups outlive a killed execution
WARM_START_FROM_KEY = "warm_start_from"  # a TF Serving model base path


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The Trainer's hyperparameters; the defaults are cifar10-fast's ResNet9 recipe."""

    # resnet9 | resnet20 | resnet56 | resnet110 | plain20 | plain56 | plain110
    model: str = "resnet9"
    epochs: int = 24
    # Global batch: with several devices each gets batch_size / devices.
    batch_size: int = 512
    # piecewise_linear: knots in epochs, linear in between, evaluated per step.
    # step: knots are step boundaries where the rate drops to the next value.
    lr_schedule: str = "piecewise_linear"
    # cifar10-fast's dawn.py: PiecewiseLinear([0, 5, 24], [0, 0.4, 0]) per step.
    lr_knots: Tuple[float, ...] = (0.0, 5.0, 24.0)
    lr_values: Tuple[float, ...] = (0.0, 0.4, 0.0)
    # ResNet9's conv and dense kernels: torch_default (PyTorch's default, as in
    # cifar10-fast) | he_uniform. He et al.'s models keep their paper's he_normal.
    kernel_initializer: str = "torch_default"
    momentum: float = 0.9
    nesterov: bool = True
    # Coupled decay on every weight, BatchNorm's included (an L2 penalty of
    # weight_decay / 2 on the mean loss).
    weight_decay: float = 5e-4
    # Stop after this many steps in all (None: epochs x steps per epoch).
    max_steps: Optional[int] = None
    # Augmentation: reflect-pad + random crop, horizontal flip, one square cutout.
    pad: int = 4
    flip: bool = True
    cutout: int = 8
    # auto: the GPU when TensorFlow sees one, else the CPU. gpu: stop unless there is
    # one. cpu: train on the CPU on purpose (a machine whose GPU TensorFlow cannot use
    # otherwise stops before the first component, exit 2).
    device: str = "auto"
    # Optimizer steps per compiled execution: the host waits for the device once per
    # execution, not once per step. With max_steps it shrinks to a divisor of it and of
    # the steps per epoch, so the stop is exact.
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
    # Average the logits of each image and its mirror image in the exported model.
    tta_flip: bool = True
    # Evaluate on the eval split after every epoch (the curves) or only at the end.
    eval_every_epoch: bool = True
    # metrics.json and the epoch lines report when the per-epoch eval accuracy (no TTA)
    # first reaches this (needs eval_every_epoch).
    target_accuracy: float = 0.94
    seed: Optional[int] = None


def he_et_al_training(model: str) -> TrainingConfig:
    """He et al.'s CIFAR schedule: SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128,
    rate /10 at 32k and 48k steps, 64k steps, pad-crop + flip (no cutout)."""
    return TrainingConfig(
        model=model, epochs=164, batch_size=128, lr_schedule="step",
        lr_knots=(32000.0, 48000.0), lr_values=(0.1, 0.01, 0.001), nesterov=False,
        weight_decay=1e-4, max_steps=64000, cutout=0, tta_flip=False)


def training_config_from_dict(values: dict) -> TrainingConfig:
    """The inverse of dataclasses.asdict, as the Trainer receives it (lists for tuples)."""
    known = {field.name for field in dataclasses.fields(TrainingConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"training settings: unknown {unknown}")
    return TrainingConfig(**{key: tuple(value) if isinstance(value, list) else value
                             for key, value in values.items()})
