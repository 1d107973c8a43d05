"""ResNet9 of cifar10-fast (David Page), in Keras 3.

prep conv 64; conv 128 + maxpool + residual(conv 128, conv 128); conv 256 + maxpool;
conv 512 + maxpool + residual(conv 512, conv 512); global max pool; dense 10 without
bias; logits x 0.125. Every conv is 3x3, stride 1, same padding, no bias, followed by
BatchNorm (eps 1e-5, momentum 0.9, gamma 1, beta 0) then ReLU; no ReLU after a
residual add. 6,577,600 parameters as Keras counts them (BN moving statistics included).

Weight decay is an L2 penalty on every weight, BatchNorm's included, added to the mean
loss: L2(wd / 2) has gradient wd * w, the coupled decay of the original's SGD.
"""

from __future__ import annotations

import keras
from keras import layers

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9
LOGIT_SCALE = 0.125


def conv_bn(x, filters: int, name: str, regularizer):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                      kernel_initializer="he_uniform", kernel_regularizer=regularizer,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM,
                                  gamma_regularizer=regularizer,
                                  beta_regularizer=regularizer, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def residual(x, filters: int, name: str, regularizer):
    shortcut = x
    x = conv_bn(x, filters, f"{name}_res1", regularizer)
    x = conv_bn(x, filters, f"{name}_res2", regularizer)
    return layers.Add(name=f"{name}_add")([shortcut, x])


def build_resnet9(weight_decay: float = 5e-4, num_classes: int = 10,
                  augmentation: keras.layers.Layer | None = None) -> keras.Model:
    """`augmentation` runs first, in training only (it is the caller's layer)."""
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    inputs = keras.Input((32, 32, 3), name="image_xf")
    x = augmentation(inputs) if augmentation is not None else inputs
    x = conv_bn(x, 64, "prep", regularizer)
    x = conv_bn(x, 128, "layer1", regularizer)
    x = layers.MaxPooling2D(2, name="layer1_pool")(x)
    x = residual(x, 128, "layer1", regularizer)
    x = conv_bn(x, 256, "layer2", regularizer)
    x = layers.MaxPooling2D(2, name="layer2_pool")(x)
    x = conv_bn(x, 512, "layer3", regularizer)
    x = layers.MaxPooling2D(2, name="layer3_pool")(x)
    x = residual(x, 512, "layer3", regularizer)
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_initializer="he_uniform",
                     kernel_regularizer=regularizer, name="classifier")(x)
    # float32 logits under mixed precision: the softmax and loss stay exact.
    logits = layers.Rescaling(LOGIT_SCALE, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="resnet9")
