"""Test-time augmentation's views and weights (airbench94's infer_mirror_translate and
cifar10-fast's flip), against numpy."""

from __future__ import annotations

import keras
import numpy as np

from components.training.tta import averaged_logits, views


def _images():
    return np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype("float32")


def test_flip_views_are_the_image_and_its_mirror_at_half_each():
    images = _images()
    (w1, v1), (w2, v2) = views(images, flip=True)
    assert (w1, w2) == (0.5, 0.5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(v1), images)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(v2), images[:, :, ::-1])
    assert [w for w, _ in views(images, flip=False)] == [1.0]


def test_airbench_views_are_two_diagonal_one_pixel_shifts_and_their_mirrors():
    images = _images()
    padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    expected = [(0.25, images), (0.25, images[:, :, ::-1]),
                (0.125, padded[:, 0:32, 0:32]), (0.125, padded[:, 0:32, 0:32][:, :, ::-1]),
                (0.125, padded[:, 2:34, 2:34]), (0.125, padded[:, 2:34, 2:34][:, :, ::-1])]
    actual = views(images, flip=True, translate=1)
    assert [w for w, _ in actual] == [w for w, _ in expected]
    for (_, view), (_, wanted) in zip(actual, expected):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(view), wanted)


def test_logits_are_averaged_with_those_weights():
    images = _images()
    weights = np.random.default_rng(1).normal(size=(32 * 32 * 3, 10)).astype("float32")

    def linear_model(batch):
        return keras.ops.matmul(keras.ops.reshape(batch, (-1, 32 * 32 * 3)), weights)

    padded = np.pad(images, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    crops = [images, padded[:, 0:32, 0:32], padded[:, 2:34, 2:34]]
    flat = [c.reshape(3, -1) @ weights for c in crops]
    mirrored = [c[:, :, ::-1].reshape(3, -1) @ weights for c in crops]
    expected = (0.25 * (flat[0] + mirrored[0])
                + 0.125 * (flat[1] + mirrored[1] + flat[2] + mirrored[2]))
    actual = averaged_logits(linear_model, images, flip=True, translate=1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(actual), expected, rtol=1e-4,
                               atol=1e-3)
