"""The building blocks both model families share: 3x3 convolutions without bias,
BatchNorm with the recipe's constants, and the L2 penalty that is the coupled weight
decay. Layer names are `<name>_conv`, `<name>_bn`, `<name>_relu`."""

from __future__ import annotations

from typing import Optional

import keras
from keras import layers

from components.contract import IMAGE_SHAPE, IMAGE_XF_KEY
from components.training.models.batch_norm import BatchNorm

# PyTorch's BatchNorm defaults, which both papers' models use: eps 1e-5 and a running
# average that keeps 0.9 of the old value (PyTorch calls that momentum 0.1).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

# The convolutions' and the dense layer's kernel initialisers `training.kernel_initializer`
# names. torch_default is PyTorch's default for nn.Conv2d and nn.Linear, which
# cifar10-fast keeps: kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
# variance 1/(3 fan_in). Keras's fan_in (kernel height x width x input channels for a
# conv, the inputs for a dense layer) is PyTorch's. he_uniform (variance 2/fan_in, six
# times as large) is the project's first port's, kept as an option.
KERNEL_INITIALIZERS = {
    "torch_default": lambda: keras.initializers.VarianceScaling(
        scale=1.0 / 3.0, mode="fan_in", distribution="uniform"),
    "he_uniform": lambda: keras.initializers.HeUniform(),
}


def kernel_initializer(name: str) -> keras.initializers.Initializer:
    if name not in KERNEL_INITIALIZERS:
        raise ValueError(f"kernel initializer {name!r}: unknown (known: "
                         f"{', '.join(KERNEL_INITIALIZERS)})")
    return KERNEL_INITIALIZERS[name]()


def weight_decay_regularizer(weight_decay: float) -> Optional[keras.regularizers.Regularizer]:
    """L2(wd / 2) on the mean loss has gradient wd * w: SGD's coupled weight decay."""
    return keras.regularizers.L2(weight_decay / 2) if weight_decay else None


def model_input(augmentation: Optional[keras.layers.Layer]) -> tuple:
    """(the model's input, the tensor the network starts from): the transformed image,
    through `augmentation` first when given (a layer active in training only)."""
    inputs = keras.Input(IMAGE_SHAPE, name=IMAGE_XF_KEY)
    return inputs, augmentation(inputs) if augmentation is not None else inputs


def conv3x3(x, filters: int, name: str, regularizer, initializer, strides: int = 1):
    return layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                         kernel_initializer=initializer, kernel_regularizer=regularizer,
                         name=f"{name}_conv")(x)


def bn_relu(x, name: str, regularizer):
    """BatchNorm (gamma 1, beta 0, both decayed like every weight) then ReLU."""
    x = BatchNorm(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, gamma_regularizer=regularizer,
                  beta_regularizer=regularizer, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def conv_bn_relu(x, filters: int, name: str, regularizer, initializer):
    return bn_relu(conv3x3(x, filters, name, regularizer, initializer=initializer), name,
                   regularizer)
