"""cifar10-fast augmentation as a Keras layer: vectorised over the batch, on-device.

Reflect-pad by `pad` and take a random 32x32 crop, flip horizontally with probability
1/2, and zero one `cutout` x `cutout` square that lies fully inside the image. Each
image of the batch gets its own offsets, flip and square, drawn fresh at every step;
all of it is batched tensor ops inside the training step (no per-image Python, no
py_function), so on a GPU it runs on the GPU. Inputs are already Z-scored, so the
cutout's zeros are the channel means. Inactive outside training.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class CifarAugment(keras.layers.Layer):

    def __init__(self, pad: int = 4, flip: bool = True, cutout: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.pad, self.flip, self.cutout = pad, flip, cutout

    def augment(self, images: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(images)[0]
        height, width = images.shape[1], images.shape[2]
        if self.pad:
            padded = tf.pad(images, [[0, 0], [self.pad, self.pad], [self.pad, self.pad],
                                     [0, 0]], mode="REFLECT")
            top = tf.random.uniform([batch], 0, 2 * self.pad + 1, dtype=tf.int32)
            left = tf.random.uniform([batch], 0, 2 * self.pad + 1, dtype=tf.int32)
            rows = top[:, None] + tf.range(height)[None, :]
            cols = left[:, None] + tf.range(width)[None, :]
            images = tf.gather(padded, rows, axis=1, batch_dims=1)
            images = tf.gather(images, cols, axis=2, batch_dims=1)
        if self.flip:
            flip = tf.random.uniform([batch, 1, 1, 1]) < 0.5
            images = tf.where(flip, tf.reverse(images, axis=[2]), images)
        if self.cutout:
            top = tf.random.uniform([batch, 1], 0, height - self.cutout + 1, dtype=tf.int32)
            left = tf.random.uniform([batch, 1], 0, width - self.cutout + 1, dtype=tf.int32)
            in_rows = (tf.range(height)[None, :] >= top) & (tf.range(height)[None, :] <
                                                            top + self.cutout)
            in_cols = (tf.range(width)[None, :] >= left) & (tf.range(width)[None, :] <
                                                            left + self.cutout)
            square = in_rows[:, :, None, None] & in_cols[:, None, :, None]
            images = tf.where(square, tf.zeros_like(images), images)
        return images

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return self.augment(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pad": self.pad, "flip": self.flip,
                "cutout": self.cutout}
