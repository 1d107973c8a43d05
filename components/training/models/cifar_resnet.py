"""The deep CIFAR ResNets of He et al.: ResNet-20/56/110 and their plain counterparts.

Depth 6n + 2: a 3x3 conv with 16 filters, three stages of n units at 16, 32 and 64
filters (the first unit of stages 2 and 3 halves the resolution), then BN-ReLU, global
average pool and a dense layer to 10 classes. Units are pre-activation
(BN-ReLU-conv-BN-ReLU-conv, "Identity Mappings in Deep Residual Networks"). Shortcuts
add no parameters: identity, or where the shape changes a 2x2 average pool plus
zero-padded channels (option A). `plain` variants are the same stack without shortcuts.
"""

from __future__ import annotations

import keras
from keras import layers

from components.contract import NUM_CLASSES
from components.training.models.layers import (bn_relu, conv3x3, model_input,
                                               weight_decay_regularizer)

STAGE_FILTERS = (16, 32, 64)
DEPTHS = (20, 56, 110)


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class ChannelZeroPad(layers.Layer):
    """Appends `extra_channels` zero channels: the parameter-free shortcut widening."""

    def __init__(self, extra_channels: int, **kwargs):
        super().__init__(**kwargs)
        self.extra_channels = extra_channels

    def call(self, inputs):
        return keras.ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, self.extra_channels]])

    def compute_output_shape(self, input_shape):
        return input_shape[:-1] + (input_shape[-1] + self.extra_channels,)

    def get_config(self):
        return {**super().get_config(), "extra_channels": self.extra_channels}


def _conv(x, filters: int, strides: int, name: str, regularizer):
    # He et al. initialise from a normal distribution.
    return conv3x3(x, filters, name, regularizer, "he_normal", strides=strides)


def _unit(x, filters: int, strides: int, shortcut: bool, name: str, regularizer):
    y = bn_relu(x, f"{name}_a", regularizer)
    y = _conv(y, filters, strides, f"{name}_a", regularizer)
    y = bn_relu(y, f"{name}_b", regularizer)
    y = _conv(y, filters, 1, f"{name}_b", regularizer)
    if not shortcut:
        return y
    skip = x
    if strides != 1:
        skip = layers.AveragePooling2D(strides, name=f"{name}_skip_pool")(skip)
    if skip.shape[-1] != filters:
        skip = ChannelZeroPad(filters - skip.shape[-1], name=f"{name}_skip_pad")(skip)
    return layers.Add(name=f"{name}_add")([skip, y])


def build_cifar_resnet(depth: int, shortcuts: bool = True, weight_decay: float = 1e-4,
                       num_classes: int = NUM_CLASSES,
                       augmentation: keras.layers.Layer | None = None) -> keras.Model:
    if (depth - 2) % 6:
        raise ValueError(f"depth {depth}: a CIFAR ResNet has depth 6n + 2 (20, 56, 110)")
    units_per_stage = (depth - 2) // 6
    regularizer = weight_decay_regularizer(weight_decay)
    inputs, x = model_input(augmentation)
    x = _conv(x, STAGE_FILTERS[0], 1, "stem", regularizer)
    for stage, filters in enumerate(STAGE_FILTERS, start=1):
        for unit in range(units_per_stage):
            strides = 2 if stage > 1 and unit == 0 else 1
            x = _unit(x, filters, strides, shortcuts, f"stage{stage}_unit{unit + 1}",
                      regularizer)
    x = bn_relu(x, "final", regularizer)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    logits = layers.Dense(num_classes, kernel_initializer="he_normal",
                          kernel_regularizer=regularizer, dtype="float32", name="logits")(x)
    kind = "resnet" if shortcuts else "plain"
    return keras.Model(inputs, logits, name=f"{kind}{depth}")
