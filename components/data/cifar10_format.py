"""The two official CIFAR-10 file layouts: reading with validation, and writing.

Python layout (`cifar-10-batches-py/`): each batch is a pickled dict with `data`, a
uint8 array [N, 3072] (1024 red, then green, then blue values, each plane row-major
32x32), and `labels`, a list of N ints. Binary layout (`cifar-10-batches-bin/`): each
record is 1 label byte followed by the same 3072 pixel bytes.

Every reader returns images as HWC uint8 [N, 32, 32, 3], which is also what the
pipeline stores in its tf.Examples. Every problem is raised as `Cifar10DataError`
naming the file and what is wrong with it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
from typing import BinaryIO, Callable, Optional, Sequence

import numpy as np

from components.console import UserError
from components.contract import (CLASS_NAMES, IMAGE_CHANNELS, IMAGE_HEIGHT, IMAGE_WIDTH,
                                 NUM_CLASSES)

PIXELS_PER_IMAGE = IMAGE_HEIGHT * IMAGE_WIDTH * IMAGE_CHANNELS  # 3072
BINARY_RECORD_BYTES = 1 + PIXELS_PER_IMAGE  # 3073

PYTHON_LAYOUT = "python"
BINARY_LAYOUT = "binary"


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one official layout keeps its files."""

    name: str
    directory: str  # the directory the official archive extracts
    train_pattern: str  # glob, relative to `directory`
    test_file: str
    meta_file: str

    def batch_name(self, file_name: str) -> str:
        """`data_batch_1.bin` -> `data_batch_1`: ids are the same in both layouts."""
        return file_name[:-4] if file_name.endswith(".bin") else file_name


LAYOUTS = {
    PYTHON_LAYOUT: Layout(PYTHON_LAYOUT, "cifar-10-batches-py", "data_batch_*",
                          "test_batch", "batches.meta"),
    BINARY_LAYOUT: Layout(BINARY_LAYOUT, "cifar-10-batches-bin", "data_batch_*.bin",
                          "test_batch.bin", "batches.meta.txt"),
}


class Cifar10DataError(UserError, ValueError):
    """Input that is not valid CIFAR-10 data; the message names the input."""


@dataclasses.dataclass
class Batch:
    """One batch file's content."""

    images: np.ndarray  # uint8 [N, 32, 32, 3]
    labels: np.ndarray  # int64 [N]
    ids: list  # stable per-image ids: "<batch name>:<index>"

    def __len__(self) -> int:
        return len(self.labels)


def layout_of_file(path: str) -> Layout:
    return LAYOUTS[BINARY_LAYOUT if path.endswith(".bin") else PYTHON_LAYOUT]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The official batches hold only numpy arrays, lists and bytes.

    Refusing every other global means a hostile file dropped into a data directory
    cannot run code when the pipeline reads it.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _channels_first_rows_to_hwc(rows: np.ndarray) -> np.ndarray:
    return rows.reshape(-1, IMAGE_CHANNELS, IMAGE_HEIGHT, IMAGE_WIDTH).transpose(0, 2, 3, 1)


def _hwc_to_channels_first_rows(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(-1, PIXELS_PER_IMAGE)


def _check_labels(path: str, labels: np.ndarray) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        index = int(bad[0])
        raise Cifar10DataError(
            f"{path}: record {index} has label {int(labels[index])}; CIFAR-10 labels "
            f"are 0..{NUM_CLASSES - 1} ({bad.size} bad label(s) in this file)")


def parse_binary_batch(path: str, content: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not content:
        raise Cifar10DataError(f"{path}: file is empty")
    if len(content) % BINARY_RECORD_BYTES:
        whole = len(content) // BINARY_RECORD_BYTES
        raise Cifar10DataError(
            f"{path}: truncated record: {len(content)} bytes is not a whole number of "
            f"{BINARY_RECORD_BYTES}-byte records (1 label byte + {PIXELS_PER_IMAGE} "
            f"pixel bytes); record {whole} has only "
            f"{len(content) - whole * BINARY_RECORD_BYTES} bytes")
    records = np.frombuffer(content, dtype=np.uint8).reshape(-1, BINARY_RECORD_BYTES)
    return _channels_first_rows_to_hwc(records[:, 1:]), records[:, 0].astype(np.int64)


def parse_python_batch(path: str, content: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _NumpyOnlyUnpickler(io.BytesIO(content), encoding="bytes").load()
    except Exception as error:  # pickle raises many types for a bad file
        raise Cifar10DataError(
            f"{path}: not a CIFAR-10 python batch (unpickling failed: {error})") from None
    if not isinstance(batch, dict):
        raise Cifar10DataError(f"{path}: not a CIFAR-10 python batch (holds a "
                               f"{type(batch).__name__}, expected a dict)")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    for key in ("data", "labels"):
        if key not in batch:
            raise Cifar10DataError(f"{path}: not a CIFAR-10 python batch (no '{key}' entry)")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise Cifar10DataError(
            f"{path}: 'data' must be a uint8 array [N, {PIXELS_PER_IMAGE}], got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    if data.shape[1] != PIXELS_PER_IMAGE:
        raise Cifar10DataError(
            f"{path}: wrong image size: {data.shape[1]} values per image, expected "
            f"{PIXELS_PER_IMAGE} (32x32 pixels x 3 channels)")
    try:
        labels = np.asarray(batch["labels"])
    except (ValueError, TypeError):  # ragged or otherwise not an array
        labels = None
    if labels is None or labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise Cifar10DataError(
            f"{path}: 'labels' must be a list of integers, got "
            f"{getattr(labels, 'dtype', type(batch['labels']).__name__)} "
            f"{getattr(labels, 'shape', '')}")
    labels = labels.astype(np.int64)  # out-of-range values are refused by _check_labels
    if len(labels) != len(data):
        raise Cifar10DataError(
            f"{path}: {len(data)} images but {len(labels)} labels")
    return _channels_first_rows_to_hwc(data), labels


def parse_batch(path: str, content: bytes, limit: Optional[int] = None) -> Batch:
    """Parses one batch file of either layout; `limit` keeps its first N images."""
    parse = parse_binary_batch if path.endswith(".bin") else parse_python_batch
    images, labels = parse(path, content)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    _check_labels(path, labels)
    batch_name = layout_of_file(path).batch_name(os.path.basename(path))
    ids = [f"{batch_name}:{index:05d}" for index in range(len(labels))]
    return Batch(images=images, labels=labels, ids=ids)


def read_batch(path: str, limit: Optional[int] = None,
               opener: Callable[[str, str], BinaryIO] = open) -> Batch:
    """Reads and validates one batch file; `opener` may be a remote file system's."""
    try:
        with opener(path, "rb") as batch_file:
            content = batch_file.read()
    except (FileNotFoundError, IsADirectoryError, PermissionError) as error:
        raise Cifar10DataError(f"{path}: cannot read batch file ({error.strerror})") from None
    return parse_batch(path, content, limit)


def write_batch(path: str, images: np.ndarray, labels: Sequence[int],
                batch_label: str = "batch") -> None:
    """Writes images [N, 32, 32, 3] uint8 in the official layout its name implies."""
    images = np.asarray(images, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    rows = _hwc_to_channels_first_rows(images)
    if path.endswith(".bin"):
        records = np.concatenate([labels.astype(np.uint8)[:, None], rows], axis=1)
        content = records.tobytes()
    else:
        name = os.path.basename(path)
        content = pickle.dumps({
            b"batch_label": batch_label.encode(),
            b"labels": [int(label) for label in labels],
            b"data": rows,
            b"filenames": [f"{name}_{i:05d}.png".encode() for i in range(len(labels))],
        }, protocol=2)
    with open(path, "wb") as batch_file:
        batch_file.write(content)


def write_meta(layout_dir: str, layout: Layout, num_cases_per_batch: int = 10000) -> None:
    path = os.path.join(layout_dir, layout.meta_file)
    if layout.name == BINARY_LAYOUT:
        with open(path, "w") as meta_file:
            meta_file.write("\n".join(CLASS_NAMES) + "\n")
    else:
        with open(path, "wb") as meta_file:
            pickle.dump({b"num_cases_per_batch": num_cases_per_batch,
                         b"label_names": [name.encode() for name in CLASS_NAMES],
                         b"num_vis": PIXELS_PER_IMAGE}, meta_file, protocol=2)


def write_dataset(root: str, layout_name: str, train_batches: Sequence[tuple],
                  test_batch: Optional[tuple]) -> str:
    """Writes a complete layout directory under `root`; returns that directory.

    `train_batches` and `test_batch` are (images, labels) pairs.
    """
    layout = LAYOUTS[layout_name]
    layout_dir = os.path.join(root, layout.directory)
    os.makedirs(layout_dir, exist_ok=True)
    suffix = ".bin" if layout_name == BINARY_LAYOUT else ""
    for number, (images, labels) in enumerate(train_batches, start=1):
        write_batch(os.path.join(layout_dir, f"data_batch_{number}{suffix}"), images,
                    labels, f"training batch {number} of {len(train_batches)}")
    if test_batch is not None:
        write_batch(os.path.join(layout_dir, layout.test_file), *test_batch,
                    batch_label="testing batch 1 of 1")
    write_meta(layout_dir, layout)
    return layout_dir
