"""Transform's output for the Trainer: the Z-scored images and labels of a split, read
into memory once (50,000 images are 600 MB of float32), and the batches of an epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import keras
import numpy as np
import tensorflow as tf

if TYPE_CHECKING:  # train() uses this module without tensorflow_transform
    import tensorflow_transform as tft

from components.contract import IMAGE_XF_KEY, LABEL_XF_KEY


def load_split(file_patterns, tft_output: tft.TFTransformOutput) -> tuple:
    """All transformed examples of a split -> (float32 [N, 32, 32, 3], int64 [N])."""
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"no transformed examples match {list(file_patterns)}")
    spec = tft_output.transformed_feature_spec()
    dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP")
               .batch(1024)
               .map(lambda records: tf.io.parse_example(records, spec),
                    num_parallel_calls=tf.data.AUTOTUNE))
    images, labels = [], []
    for batch in dataset:
        images.append(batch[IMAGE_XF_KEY].numpy())
        labels.append(batch[LABEL_XF_KEY].numpy().reshape(-1))
    return np.concatenate(images), np.concatenate(labels)


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuner off. Its thread shares the CPU with the
    training step, and each new iterator (one per epoch, and one per validation pass)
    waits for it: 2 to 20 s at every epoch start on a 2-core CPU, more than a whole
    step (docs/BENCHMARKS.md). A gather from memory needs no tuning."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


class AlternatingFlip(keras.callbacks.Callback):
    """airbench94's flip: each image is flipped at random in the first epoch, drawn
    once per image from `seed`, then the other way round on every other epoch. Keras
    starts each epoch's iterator after `on_epoch_begin`, which sets the epoch the
    batches read (also when a resumed run starts at a later epoch)."""

    def __init__(self, image_count: int, seed=None):
        super().__init__()
        self.first_epoch_flips = tf.constant(
            np.random.default_rng(seed).random(image_count) < 0.5)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)

    def __call__(self, index: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
        """The batch of `images` at `index` as this epoch shows it."""
        flip = tf.not_equal(tf.gather(self.first_epoch_flips, index),
                            tf.equal(self.epoch % 2, 1))
        return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def shuffled_batches(images: np.ndarray, labels: np.ndarray, batch_size: int,
                     seed=None, alternating_flip: Optional[AlternatingFlip] = None
                     ) -> tf.data.Dataset:
    """Full batches in a fresh order every epoch, from arrays held once.

    Only indices are shuffled and batched; each batch is a gather from the one copy of
    the images. A shuffle buffer of the images themselves would copy the whole train
    set through it every epoch (600 MB for CIFAR-10), which on a GPU costs more than
    the epoch's training. Two batches are gathered ahead of the step."""
    held_images, held_labels = tf.constant(images), tf.constant(labels)

    def batch_at(index):
        batch_images = tf.gather(held_images, index)
        if alternating_flip is not None:
            batch_images = alternating_flip(index, batch_images)
        return batch_images, tf.gather(held_labels, index)

    return without_autotune(
        tf.data.Dataset.range(len(labels))
        .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .map(batch_at)
        .prefetch(2))


def eval_batches(images: np.ndarray, labels: np.ndarray,
                 batch_size: int = 500) -> tf.data.Dataset:
    """The evaluation split in order, for the per-epoch validation pass."""
    return without_autotune(tf.data.Dataset.from_tensor_slices((images, labels))
                            .batch(batch_size))
