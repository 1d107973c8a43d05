"""The data of a recipe benchmark, with numpy and Pillow only (no TensorFlow), so that
the project's trainer and the PyTorch reference read the same arrays, also on a GPU
machine that has no TensorFlow.

`--data` is either
- `cifar10_jpeg.npz` (../shared/cifar10-jpeg: all 60,000 images, JPEG-compressed; for
  speed and side-by-side accuracy only, never a "CIFAR-10 accuracy"), or
  `cifar10_png.npz` (../shared/cifar10-full: the same, lossless: CIFAR-10 accuracy), or
- a directory in an official layout (cifar-10-batches-py/ or -bin/, or their parent).

or the decoded cache `decode_once` writes: the uint8 images of either, decoded once
per run (decoding 60,000 JPEGs in Python costs about as much as a GPU training run) and
read back by every child process of the benchmark in a second.

Images are Z-scored per channel with the train split's statistics, as Transform does.
"""

from __future__ import annotations

import glob
import io
import os
from typing import Optional

import numpy as np


def _decode_images(blob: np.ndarray, offsets: np.ndarray, limit: Optional[int]) -> np.ndarray:
    from PIL import Image

    count = len(offsets) - 1 if limit is None else min(limit, len(offsets) - 1)
    return np.stack([np.asarray(Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]]
                                                      .tobytes())).convert("RGB"))
                     for i in range(count)])


def _from_npz(path: str, train_limit, test_limit) -> tuple:
    arrays = np.load(path)
    encoding = "png" if "train_png" in arrays.files else "jpeg"
    train = _decode_images(arrays[f"train_{encoding}"], arrays["train_offsets"], train_limit)
    test = _decode_images(arrays[f"test_{encoding}"], arrays["test_offsets"], test_limit)
    return (train, arrays["train_labels"][:len(train)].astype(np.int64),
            test, arrays["test_labels"][:len(test)].astype(np.int64))


def _from_layout(path: str, train_limit, test_limit) -> tuple:
    from components.data import cifar10_format

    for layout_dir in (os.path.join(path, "cifar-10-batches-py"),
                       os.path.join(path, "cifar-10-batches-bin"), path):
        files = sorted(f for f in glob.glob(os.path.join(layout_dir, "data_batch_*"))
                       if not f.endswith(".html"))
        tests = sorted(glob.glob(os.path.join(layout_dir, "test_batch*")))
        if files and tests:
            break
    else:
        raise SystemExit(f"{path}: no data_batch_* and test_batch files (an official "
                         f"CIFAR-10 layout), and not an .npz file")
    train_batches = [cifar10_format.read_batch(f) for f in files]
    test_batch = cifar10_format.read_batch(tests[0])
    train = np.concatenate([b.images for b in train_batches])[:train_limit]
    labels = np.concatenate([b.labels for b in train_batches])[:train_limit]
    return (train, labels.astype(np.int64), test_batch.images[:test_limit],
            test_batch.labels[:test_limit].astype(np.int64))


# The arrays of a decoded cache (an uncompressed .npz).
_DECODED_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def _is_decoded(path: str) -> bool:
    if not path.endswith(".npz"):
        return False
    with np.load(path) as arrays:
        return set(_DECODED_KEYS) <= set(arrays.files)


def decode_once(path: str, train_limit: Optional[int], test_limit: Optional[int],
                cache_dir: str) -> str:
    """The decoded cache of `path` with these limits under `cache_dir`, written unless
    an earlier run left it (keyed by the source's size, mtime and the limits); returns
    its path, which `load` reads like the source itself."""
    stat = os.stat(path)
    name = (f"{os.path.basename(os.path.normpath(path))}-{stat.st_size}-"
            f"{stat.st_mtime_ns}-{train_limit}-{test_limit}.decoded.npz")
    cached = os.path.join(cache_dir, name)
    if os.path.exists(cached):
        return cached
    os.makedirs(cache_dir, exist_ok=True)
    loader = _from_npz if path.endswith(".npz") else _from_layout
    arrays = dict(zip(_DECODED_KEYS, loader(path, train_limit, test_limit)))
    partial = f"{cached}.{os.getpid()}.partial.npz"
    np.savez(partial, **arrays)  # uncompressed: read back at disk speed
    os.replace(partial, cached)
    return cached


def load(path: str, train_limit: Optional[int] = None,
         test_limit: Optional[int] = None, holdout: int = 0) -> dict:
    """{"train": (float32 NHWC, int64), "test": (...), "source": path}, Z-scored.
    With `holdout`, "test" is the train split's last `holdout` images instead, and the
    rest is "train" (settings are chosen there, never on the test split)."""
    if _is_decoded(path):
        with np.load(path) as arrays:
            train, train_labels, test, test_labels = (arrays[key] for key in _DECODED_KEYS)
        train, train_labels = train[:train_limit], train_labels[:train_limit]
        test, test_labels = test[:test_limit], test_labels[:test_limit]
    elif path.endswith(".npz"):
        train, train_labels, test, test_labels = _from_npz(path, train_limit, test_limit)
    else:
        train, train_labels, test, test_labels = _from_layout(path, train_limit, test_limit)
    if holdout:
        train, train_labels, test, test_labels = (train[:-holdout], train_labels[:-holdout],
                                                  train[-holdout:], train_labels[-holdout:])
    mean = train.reshape(-1, 3).mean(axis=0)
    std = train.reshape(-1, 3).std(axis=0)

    def z_score(images):
        return ((images.astype(np.float32) - mean) / std).astype(np.float32)

    return {"train": (z_score(train), train_labels), "test": (z_score(test), test_labels),
            "source": os.path.abspath(path)}
