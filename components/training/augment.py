"""cifar10-fast augmentation as a Keras layer: vectorised over the batch, on-device.

Reflect-pad by `pad` and take a random 32x32 crop, flip horizontally with probability
1/2, and zero one `cutout` x `cutout` square that lies fully inside the image. Each
image of the batch gets its own offsets, flip and square, drawn fresh at every step;
all of it is batched tensor ops inside the training step (no per-image Python, no
py_function), so on a GPU it runs on the GPU. Inputs are already Z-scored, so the
cutout's zeros are the channel means. Inactive outside training.

Written with `keras.ops` and `keras.random` only, so it runs under any Keras backend.
The draws come from a `keras.random.SeedGenerator`: stateless random ops keyed by a
counter variable, so a seeded layer gives the same sequence of augmentations eagerly,
in a tf.function and under XLA (`jit_compile=True`).
"""

from __future__ import annotations

from typing import Optional

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class CifarAugment(keras.layers.Layer):

    def __init__(self, pad: int = 4, flip: bool = True, cutout: int = 8,
                 seed: Optional[int] = None, **kwargs):
        super().__init__(**kwargs)
        self.pad, self.flip, self.cutout, self.seed = pad, flip, cutout, seed
        # Its counter is layer state (`variables`), not a weight: `get_weights()`,
        # float32 copies and warm starts see the same weights as without it.
        self.seed_generator = keras.random.SeedGenerator(seed, name="augment_seed")

    def _offsets(self, batch, upper: int):
        """One integer in [0, upper) per image, shape [batch, 1]."""
        return keras.random.randint((batch, 1), 0, upper, dtype="int32",
                                    seed=self.seed_generator)

    def _crop(self, images):
        batch, height, width, channels = (ops.shape(images)[0], images.shape[1],
                                          images.shape[2], images.shape[3])
        padded = ops.pad(images, [[0, 0], [self.pad, self.pad], [self.pad, self.pad],
                                  [0, 0]], mode="reflect")
        span = 2 * self.pad + 1
        rows = self._offsets(batch, span) + ops.arange(height, dtype="int32")[None, :]
        cols = self._offsets(batch, span) + ops.arange(width, dtype="int32")[None, :]
        # Gather rows, then columns, per image: indices broadcast to the gathered shape.
        padded_width = width + 2 * self.pad
        images = ops.take_along_axis(padded, ops.broadcast_to(
            rows[:, :, None, None], (batch, height, padded_width, channels)), axis=1)
        return ops.take_along_axis(images, ops.broadcast_to(
            cols[:, None, :, None], (batch, height, width, channels)), axis=2)

    def _flip(self, images):
        flip = keras.random.uniform((ops.shape(images)[0], 1, 1, 1),
                                    seed=self.seed_generator) < 0.5
        return ops.where(flip, ops.flip(images, axis=2), images)

    def _cutout(self, images):
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        top = self._offsets(batch, height - self.cutout + 1)
        left = self._offsets(batch, width - self.cutout + 1)
        row_index = ops.arange(height, dtype="int32")[None, :]
        col_index = ops.arange(width, dtype="int32")[None, :]
        in_rows = (row_index >= top) & (row_index < top + self.cutout)
        in_cols = (col_index >= left) & (col_index < left + self.cutout)
        square = in_rows[:, :, None, None] & in_cols[:, None, :, None]
        return ops.where(square, ops.zeros_like(images), images)

    def augment(self, images):
        if self.pad:
            images = self._crop(images)
        if self.flip:
            images = self._flip(images)
        if self.cutout:
            images = self._cutout(images)
        return images

    def call(self, inputs, training=None):
        if not training:
            return inputs
        return self.augment(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "pad": self.pad, "flip": self.flip,
                "cutout": self.cutout, "seed": self.seed}
