"""The building blocks both model families share: 3x3 convolutions without bias,
BatchNorm with the recipe's constants, and the L2 penalty that is the coupled weight
decay. Layer names are `<name>_conv`, `<name>_bn`, `<name>_relu`."""

from __future__ import annotations

from typing import Optional

import keras
from keras import layers

from components.contract import IMAGE_SHAPE, IMAGE_XF_KEY

# PyTorch's BatchNorm defaults, which both papers' models use: eps 1e-5 and a running
# average that keeps 0.9 of the old value (PyTorch calls that momentum 0.1).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def weight_decay_regularizer(weight_decay: float) -> Optional[keras.regularizers.Regularizer]:
    """L2(wd / 2) on the mean loss has gradient wd * w: SGD's coupled weight decay."""
    return keras.regularizers.L2(weight_decay / 2) if weight_decay else None


def model_input(augmentation: Optional[keras.layers.Layer]) -> tuple:
    """(the model's input, the tensor the network starts from): the transformed image,
    through `augmentation` first when given (a layer active in training only)."""
    inputs = keras.Input(IMAGE_SHAPE, name=IMAGE_XF_KEY)
    return inputs, augmentation(inputs) if augmentation is not None else inputs


def conv3x3(x, filters: int, name: str, regularizer, strides: int = 1,
            initializer: str = "he_uniform"):
    return layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                         kernel_initializer=initializer, kernel_regularizer=regularizer,
                         name=f"{name}_conv")(x)


def bn_relu(x, name: str, regularizer):
    """BatchNorm (gamma 1, beta 0, both decayed like every weight) then ReLU."""
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  gamma_regularizer=regularizer,
                                  beta_regularizer=regularizer, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def conv_bn_relu(x, filters: int, name: str, regularizer, initializer: str = "he_uniform"):
    return bn_relu(conv3x3(x, filters, name, regularizer, initializer=initializer), name,
                   regularizer)
