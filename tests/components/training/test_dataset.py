"""The Trainer's batches: every image once per epoch in a fresh order, and no tf.data
autotuner (each epoch's new iterator waited seconds for its thread); airbench's
alternating flip."""

from __future__ import annotations

import numpy as np

from components.training.dataset import AlternatingFlip, eval_batches, shuffled_batches


def test_each_epoch_is_a_fresh_permutation_of_whole_batches():
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1) * np.ones((1, 2, 2, 3),
                                                                             np.float32)
    labels = np.arange(10)
    dataset = shuffled_batches(images, labels, batch_size=4, seed=0)

    epochs = []
    for _ in range(2):
        batches = [(batch_images.numpy(), batch_labels.numpy())
                   for batch_images, batch_labels in dataset]
        assert [len(batch_labels) for _, batch_labels in batches] == [4, 4]  # rest dropped
        for batch_images, batch_labels in batches:  # images stay with their labels
            np.testing.assert_array_equal(batch_images[:, 0, 0, 0], batch_labels)
        epochs.append(np.concatenate([batch_labels for _, batch_labels in batches]))
    assert all(len(set(epoch)) == 8 for epoch in epochs)
    assert not np.array_equal(epochs[0], epochs[1])


def test_the_autotuner_is_off_for_training_and_validation_batches():
    images, labels = np.zeros((8, 2, 2, 3), np.float32), np.zeros(8, np.int64)
    for dataset in (shuffled_batches(images, labels, 4), eval_batches(images, labels)):
        assert dataset.options().autotune.enabled is False


def test_the_alternating_flip_flips_each_image_the_other_way_every_other_epoch():
    """airbench: a random flip per image (from the seed) in the first epoch, then the
    other way round in odd epochs; the batches read the epoch Keras begins."""
    count = 64
    images = np.arange(count, dtype="float32")[:, None, None, None] * np.ones(
        (1, 2, 4, 1), "float32") + np.arange(4, dtype="float32")[None, None, :, None]
    labels = np.arange(count)
    flip = AlternatingFlip(count, seed=3)
    first_epoch_flips = np.random.default_rng(3).random(count) < 0.5
    dataset = shuffled_batches(images, labels, 16, seed=0, alternating_flip=flip)

    for epoch in range(3):
        flip.on_epoch_begin(epoch)
        for batch_images, batch_labels in dataset:
            for image, label in zip(batch_images.numpy(), batch_labels.numpy()):
                flipped = first_epoch_flips[label] != (epoch % 2 == 1)
                expected = images[label][:, ::-1] if flipped else images[label]
                np.testing.assert_array_equal(image, expected)
    assert 0 < first_epoch_flips.sum() < count
