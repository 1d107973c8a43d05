"""Small CIFAR-10 data for the tests: synthetic batches in the official layouts, the
real sample beside the checkout when present, and PNG-encoded images."""

from __future__ import annotations

import os

import numpy as np

from components.contract import IMAGE_SHAPE, NUM_CLASSES
from components.data import cifar10_format

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_SAMPLE = os.path.join(os.path.dirname(REPO_ROOT), "shared", "cifar10-sample")


def random_batch(count: int, seed: int) -> tuple:
    """Images with a per-channel offset (so channel order is visible) and labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 200, size=(count,) + IMAGE_SHAPE)
    images = (images + np.array([50, 20, 0])).astype(np.uint8)
    labels = rng.integers(0, NUM_CLASSES, size=count)
    return images, labels


def write_small_dataset(root: str, layout: str, train_sizes=(30, 30), test_size=20,
                        seed: int = 0) -> dict:
    """Writes train batches and a test batch; returns the arrays written."""
    train = [random_batch(size, seed + i) for i, size in enumerate(train_sizes)]
    test = random_batch(test_size, seed + 100)
    cifar10_format.write_dataset(root, layout, train, test)
    return {"train": train, "test": test}


def sample_available() -> bool:
    return os.path.isdir(os.path.join(SHARED_SAMPLE, "cifar-10-batches-py"))


def first_images(source, pattern: str, limit: int) -> np.ndarray:
    """The first `limit` images of each file a split pattern matches, in file order."""
    from components.data import source as data_source
    return np.concatenate([cifar10_format.read_batch(path, limit).images
                           for path in data_source.matching_files(source, pattern)])


def learnable_dataset(count: int, seed: int) -> tuple:
    """Z-scored float32 images whose class is visible through crops, flips and cutout:
    each class has its own colour and stripe frequency, under noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, count)
    palette = np.random.default_rng(1234).normal(size=(NUM_CLASSES, 3))
    columns = np.arange(32)
    stripes = np.sin(columns[None, :] * (labels[:, None] + 1) * np.pi / 16)
    images = (palette[labels][:, None, None, :] + 0.5 * stripes[:, None, :, None]
              + rng.normal(scale=0.8, size=(count,) + IMAGE_SHAPE))
    return images.astype(np.float32), labels.astype(np.int64)


def png_images(count: int) -> list:
    """PNG bytes of real CIFAR-10 images (the shared sample) or synthetic ones."""
    from components.data.example_gen import encode_png
    if sample_available():
        pixels = cifar10_format.read_batch(
            os.path.join(SHARED_SAMPLE, "cifar-10-batches-py", "data_batch_5"), count).images
    else:
        pixels = random_batch(count, seed=5)[0]
    return [encode_png(image) for image in pixels]


def reviewed_schema():
    """The repository's reviewed schema of the raw examples (its Schema proto)."""
    import tensorflow_data_validation as tfdv

    from pipeline.pipeline import DEFAULT_SCHEMA_FILE
    return tfdv.load_schema_text(DEFAULT_SCHEMA_FILE)
