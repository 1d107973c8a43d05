"""airbench94's network (github KellerJordan/cifar10-airbench, legacy/airbench94.py,
`make_net`), in Keras 3.

A frozen 2x2 whitening convolution (24 filters, no padding, a bias) then exact GELU;
three blocks of widths 64/256/256, each conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3
-> BN -> GELU; max-pool 3, a dense layer without bias, logits x 1/9. Spatial sizes
32 -> 31 -> 15 -> 7 -> 3 -> 1.

- Whitening (`init_whitening_conv`): the kernel holds the eigenvectors of the 2x2
  patches' uncentred second moment over the first 5,000 training images, each scaled
  by 1 / sqrt(eigenvalue + 5e-4), and their negations. It never trains; its bias
  trains for `training.whiten_bias_epochs` (components/training/optimizer.py).
- Each 3x3 conv (`Conv.reset_parameters`): PyTorch's default initialisation, then
  identity (Dirac) taps on its first input-channel-many filters.
- BatchNorm (`BatchNorm`): the running statistics keep 0.6 of the old value (PyTorch's
  momentum 0.4), eps 1e-12, the scale frozen at 1 (no variable: the fused kernel gets
  ones), the bias trained (at 64x the rate, by the optimizer).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from components.contract import NUM_CLASSES
from components.training.models.batch_norm import BatchNorm
from components.training.models.layers import (kernel_initializer, model_input,
                                               weight_decay_regularizer)

BLOCK_WIDTHS = (64, 256, 256)        # hyp net.widths
BN_MOMENTUM = 0.6                    # hyp net.batchnorm_momentum (Keras's convention)
BN_EPSILON = 1e-12                   # BatchNorm(eps=1e-12)
LOGIT_SCALE = 1 / 9                  # hyp net.scaling_factor
WHITEN_PATCH = 2                     # whiten_kernel_size
WHITEN_WIDTH = 2 * 3 * WHITEN_PATCH ** 2  # the eigenvectors and their negations: 24
WHITEN_EPSILON = 5e-4                # init_whitening_conv(eps=5e-4)
WHITEN_IMAGES = 5000                 # train_images[:5000]
WHITENING_LAYER = "whiten"


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class Whitening(layers.Layer):
    """A 2x2 convolution without padding whose kernel is set from data
    (`whitening_kernel`) and never trained; its bias is a trained weight."""

    def __init__(self, bias_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(WHITEN_PATCH, WHITEN_PATCH, input_shape[-1], WHITEN_WIDTH),
            initializer="zeros", trainable=False, name="kernel")
        self.bias = self.add_weight(shape=(WHITEN_WIDTH,), initializer="zeros",
                                    regularizer=self.bias_regularizer, name="bias")

    def call(self, inputs):
        return ops.conv(inputs, self.kernel, padding="valid") + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - WHITEN_PATCH + 1,
                input_shape[2] - WHITEN_PATCH + 1, WHITEN_WIDTH)

    def get_config(self):
        return {**super().get_config(),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer)}


def whitening_kernel(images: np.ndarray) -> np.ndarray:
    """The whitening kernel [2, 2, channels, 24] of Z-scored NHWC images: patches
    flattened in (row, column, channel) order, the kernel's own, so that filter k
    projects a patch on the k-th eigenvector (largest eigenvalue first)."""
    images = np.asarray(images[:WHITEN_IMAGES], np.float64)
    height, width, channels = images.shape[1:]
    size = WHITEN_PATCH * WHITEN_PATCH * channels
    second_moment, count = np.zeros((size, size)), 0
    for start in range(0, len(images), 500):  # 500 images' patches: 46 MB at a time
        chunk = images[start:start + 500]
        patches = np.stack([chunk[:, row:height - WHITEN_PATCH + 1 + row,
                                  col:width - WHITEN_PATCH + 1 + col, :]
                            for row in range(WHITEN_PATCH) for col in range(WHITEN_PATCH)],
                           axis=3).reshape(-1, size)
        second_moment += patches.T @ patches
        count += len(patches)
    eigenvalues, eigenvectors = np.linalg.eigh(second_moment / count)
    eigenvalues, eigenvectors = eigenvalues[::-1], eigenvectors[:, ::-1]
    scaled = eigenvectors / np.sqrt(eigenvalues + WHITEN_EPSILON)
    return np.concatenate([scaled, -scaled], axis=1).reshape(
        WHITEN_PATCH, WHITEN_PATCH, channels, WHITEN_WIDTH).astype(np.float32)


def set_whitening(model: keras.Model, images: np.ndarray) -> None:
    """Sets the model's whitening kernel from its training images."""
    model.get_layer(WHITENING_LAYER).kernel.assign(whitening_kernel(images))


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class DiracTaps(keras.initializers.Initializer):
    """`base`'s draw for a [3, 3, in, out] kernel, with its first `in` filters replaced
    by identity taps (torch.nn.init.dirac_ on weight[:in_channels])."""

    def __init__(self, base: str = "torch_default"):
        self.base = base

    def __call__(self, shape, dtype=None):
        drawn = kernel_initializer(self.base)(shape, dtype=dtype)
        rows, cols, inputs, outputs = shape
        identity = np.zeros(shape, np.float32)
        for channel in range(min(inputs, outputs)):
            identity[rows // 2, cols // 2, channel, channel] = 1.0
        is_identity_filter = np.arange(outputs) < inputs
        return ops.where(is_identity_filter, ops.cast(identity, drawn.dtype), drawn)

    def get_config(self):
        return {"base": self.base}


def _gelu(x, name: str):
    # nn.GELU(): the exact form (keras.ops.gelu defaults to the tanh approximation).
    return layers.Activation(keras.activations.gelu, name=f"{name}_gelu")(x)


def _conv_bn_gelu(x, filters: int, name: str, regularizer, initializer: str, pool: bool):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                      kernel_initializer=DiracTaps(initializer),
                      kernel_regularizer=regularizer, name=f"{name}_conv")(x)
    if pool:
        x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = BatchNorm(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, scale=False,
                  beta_regularizer=regularizer, name=f"{name}_bn")(x)
    return _gelu(x, name)


def build_airbench94(weight_decay: float = 0.0, num_classes: int = NUM_CLASSES,
                     augmentation: keras.layers.Layer | None = None,
                     initializer: str = "torch_default") -> keras.Model:
    """`weight_decay`: an L2 penalty as the other models take it (training.optimizer
    sgd); airbench's own decay is the optimizer's (torch_sgd), with 0 here."""
    regularizer = weight_decay_regularizer(weight_decay)
    inputs, x = model_input(augmentation)
    x = Whitening(bias_regularizer=regularizer, name=WHITENING_LAYER)(x)
    x = _gelu(x, WHITENING_LAYER)
    for block, width in enumerate(BLOCK_WIDTHS, start=1):
        x = _conv_bn_gelu(x, width, f"block{block}a", regularizer, initializer, pool=True)
        x = _conv_bn_gelu(x, width, f"block{block}b", regularizer, initializer, pool=False)
    x = layers.MaxPooling2D(3, name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(num_classes, use_bias=False,
                     kernel_initializer=kernel_initializer(initializer),
                     kernel_regularizer=regularizer, name="classifier")(x)
    logits = layers.Rescaling(LOGIT_SCALE, dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name="airbench94")
