"""Model builders by name: resnet9, airbench94, resnet20/56/110 and plain20/56/110."""

from __future__ import annotations

import re

import keras

from components.training.models.airbench import build_airbench94
from components.training.models.cifar_resnet import DEPTHS, build_cifar_resnet
from components.training.models.resnet9 import build_resnet9

MODEL_NAMES = ("resnet9", "airbench94") + tuple(f"{kind}{depth}" for kind in ("resnet", "plain")
                                   for depth in DEPTHS)


def build_model(name: str, weight_decay: float,
                augmentation: keras.layers.Layer | None = None,
                kernel_initializer: str = "torch_default") -> keras.Model:
    """`kernel_initializer` applies to ResNet9 and airbench94; He et al.'s models use
    their paper's."""
    if name == "resnet9":
        return build_resnet9(weight_decay, augmentation=augmentation,
                             initializer=kernel_initializer)
    if name == "airbench94":
        return build_airbench94(weight_decay, augmentation=augmentation,
                                initializer=kernel_initializer)
    match = re.fullmatch(r"(resnet|plain)(\d+)", name)
    if name not in MODEL_NAMES or not match:
        raise ValueError(f"model {name!r}: unknown (known: {', '.join(MODEL_NAMES)})")
    return build_cifar_resnet(int(match.group(2)), shortcuts=match.group(1) == "resnet",
                              weight_decay=weight_decay, augmentation=augmentation)
