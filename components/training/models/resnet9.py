"""ResNet9 of cifar10-fast (David Page), in Keras 3.

prep conv 64; conv 128 + maxpool + residual(conv 128, conv 128); conv 256 + maxpool;
conv 512 + maxpool + residual(conv 512, conv 512); global max pool; dense 10 without
bias; logits x 0.125. Every conv is 3x3, stride 1, same padding, no bias, followed by
BatchNorm (eps 1e-5, momentum 0.9, gamma 1, beta 0) then ReLU; no ReLU after a
residual add. 6,577,600 parameters as Keras counts them (BN moving statistics included).
The convolutions and the dense layer start from PyTorch's default initialisation, as
cifar10-fast's do (`layers.KERNEL_INITIALIZERS`), unless told otherwise.

Weight decay is an L2 penalty on every weight, BatchNorm's included, added to the mean
loss: L2(wd / 2) has gradient wd * w, the coupled decay of the original's SGD.
"""

from __future__ import annotations

import keras
from keras import layers

from components.contract import NUM_CLASSES
from components.training.models.layers import (conv_bn_relu, kernel_initializer,
                                               model_input, weight_decay_regularizer)

LOGIT_SCALE = 0.125


def residual(x, filters: int, name: str, regularizer, initializer):
    shortcut = x
    x = conv_bn_relu(x, filters, f"{name}_res1", regularizer, initializer)
    x = conv_bn_relu(x, filters, f"{name}_res2", regularizer, initializer)
    return layers.Add(name=f"{name}_add")([shortcut, x])


def build_resnet9(weight_decay: float = 5e-4, num_classes: int = NUM_CLASSES,
                  augmentation: keras.layers.Layer | None = None,
                  initializer: str = "torch_default") -> keras.Model:
    """`augmentation` runs first, in training only (it is the caller's layer);
    `initializer` names the kernels' initialisation (`layers.KERNEL_INITIALIZERS`)."""
    regularizer = weight_decay_regularizer(weight_decay)
    inputs, x = model_input(augmentation)

    def init():  # a fresh initializer per layer: each draws its own kernel
        return kernel_initializer(initializer)

    x = conv_bn_relu(x, 64, "prep", regularizer, init())
    x = conv_bn_relu(x, 128, "layer1", regularizer, init())
    x = layers.MaxPooling2D(2, name="layer1_pool")(x)
    x = residual(x, 128, "layer1", regularizer, init())
    x = conv_bn_relu(x, 256, "layer2", regularizer, init())
    x = layers.MaxPooling2D(2, name="layer2_pool")(x)
    x = conv_bn_relu(x, 512, "layer3", regularizer, init())
    x = layers.MaxPooling2D(2, name="layer3_pool")(x)
    x = residual(x, 512, "layer3", regularizer, init())
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(num_classes, use_bias=False, kernel_initializer=init(),
                     kernel_regularizer=regularizer, name="classifier")(x)
    # float32 logits under mixed precision: the softmax and loss stay exact.
    logits = layers.Rescaling(LOGIT_SCALE, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="resnet9")
