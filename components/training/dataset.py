"""Transform's output for the Trainer: the Z-scored images and labels of a split, read
into memory once (50,000 images are 600 MB of float32), and the batches of an epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def shuffled_batches(images: np.ndarray, labels: np.ndarray, batch_size: int,
                     seed=None) -> tf.data.Dataset:
    """Full batches in a fresh order every epoch, from arrays held once.

    Only indices are shuffled and batched; each batch is a gather from the one copy of
    the images. A shuffle buffer of the images themselves would copy the whole train
    set through it every epoch (600 MB for CIFAR-10), which on a GPU costs more than
    the epoch's training. Two batches are gathered ahead of the step."""
    held_images, held_labels = tf.constant(images), tf.constant(labels)
    return without_autotune(
        tf.data.Dataset.range(len(labels))
        .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .map(lambda index: (tf.gather(held_images, index), tf.gather(held_labels, index)))
        .prefetch(2))


def eval_batches(images: np.ndarray, labels: np.ndarray,
                 batch_size: int = 500) -> tf.data.Dataset:
    """The evaluation split in order, for the per-epoch validation pass."""
    return without_autotune(tf.data.Dataset.from_tensor_slices((images, labels))
                            .batch(batch_size))
