"""The on-device augmentation: crop, flip, cutout, fresh at every call."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from components.training.augment import CifarAugment


def _coordinate_images(count: int) -> np.ndarray:
    """Every pixel unique within an image: value = row * 32 + column (+ image offset)."""
    grid = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    images = np.stack([grid, grid + 2000, grid + 4000], axis=-1)
    return np.stack([images + 10000 * i for i in range(count)])


def test_inactive_outside_training_and_shape_preserved():
    images = _coordinate_images(4)
    layer = CifarAugment()
    np.testing.assert_array_equal(layer(images, training=False), images)
    assert layer(images, training=True).shape == images.shape


def test_crops_come_from_the_reflect_padded_image():
    images = _coordinate_images(64)
    padded = np.pad(images, [(0, 0), (4, 4), (4, 4), (0, 0)], mode="reflect")
    cropped = CifarAugment(pad=4, flip=False, cutout=0)(images, training=True).numpy()
    offsets = set()
    for index in range(len(images)):
        matches = [(top, left) for top in range(9) for left in range(9)
                   if np.array_equal(padded[index, top:top + 32, left:left + 32],
                                     cropped[index])]
        assert len(matches) == 1, f"image {index} is not a crop of its padded image"
        offsets.add(matches[0])
    assert len(offsets) > 20  # per-image offsets, not one for the batch


def test_cutout_is_one_8x8_zero_square_inside_the_image():
    images = np.ones((200, 32, 32, 3), np.float32)
    out = CifarAugment(pad=0, flip=False, cutout=8)(images, training=True).numpy()
    corners = set()
    for image in out:
        zero = np.all(image == 0, axis=-1)
        assert zero.sum() == 64
        rows, cols = np.nonzero(zero)
        assert rows.max() - rows.min() == 7 and cols.max() - cols.min() == 7
        assert rows.min() >= 0 and rows.max() <= 31 and cols.min() >= 0 and cols.max() <= 31
        assert np.all(image[rows.min():rows.max() + 1, cols.min():cols.max() + 1] == 0)
        corners.add((rows.min(), cols.min()))
    # Squares land everywhere, edges included.
    assert min(r for r, _ in corners) == 0 and max(r for r, _ in corners) == 24
    assert len(corners) > 100


def test_flips_happen_at_about_half_the_images():
    images = _coordinate_images(1)[[0] * 4000]
    out = CifarAugment(pad=0, flip=True, cutout=0)(images, training=True).numpy()
    flipped = np.all(out == images[:, :, ::-1], axis=(1, 2, 3))
    unchanged = np.all(out == images, axis=(1, 2, 3))
    assert np.all(flipped | unchanged)
    assert abs(flipped.mean() - 0.5) < 0.04


def test_a_different_result_every_call():
    images = _coordinate_images(16)
    layer = CifarAugment()
    first = layer(images, training=True).numpy()
    second = layer(images, training=True).numpy()
    assert not np.array_equal(first, second)


def test_runs_inside_a_compiled_step():
    layer = CifarAugment()
    step = tf.function(lambda x: layer(x, training=True), jit_compile=False)
    assert step(tf.constant(_coordinate_images(8))).shape == (8, 32, 32, 3)


def test_a_seeded_layer_is_reproducible_under_xla():
    """Seeds mean something under XLA: the same seed gives the same sequence of
    augmentations in a jit-compiled step, another seed another one."""
    images = tf.constant(_coordinate_images(16))

    def two_steps(seed):
        layer = CifarAugment(seed=seed)
        step = tf.function(lambda x: layer(x, training=True), jit_compile=True)
        return step(images).numpy(), step(images).numpy()

    first, second = two_steps(seed=7)
    again_first, again_second = two_steps(seed=7)
    np.testing.assert_array_equal(first, again_first)
    np.testing.assert_array_equal(second, again_second)
    assert not np.array_equal(first, second)  # fresh draws at every step
    other_first, _ = two_steps(seed=8)
    assert not np.array_equal(first, other_first)


def test_imports_no_tensorflow():
    """The layer is Keras-native (keras.ops, keras.random): nothing of TensorFlow."""
    import ast
    import inspect

    from components.training import augment, schedule
    from components.training.models import cifar_resnet, layers, resnet9
    for module in (augment, schedule, cifar_resnet, layers, resnet9):
        imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(
            inspect.getsource(module))) if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in (node.names if isinstance(node, ast.Import) else
                          [type("A", (), {"name": node.module or ""})])}
        assert "tensorflow" not in imported, module.__name__
