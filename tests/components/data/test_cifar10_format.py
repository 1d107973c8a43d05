"""Readers and writers of the two official layouts, on files written byte by byte."""

from __future__ import annotations

import glob
import os
import pickle

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from components.data import cifar10_format
from components.data.cifar10_format import Cifar10DataError
from tests.support.data import SHARED_SAMPLE, random_batch, sample_available
from tests.support.fuzz import FUZZ, mutated


def _planar_rows(images: np.ndarray) -> np.ndarray:
    """The official row: 1024 red values, then 1024 green, then 1024 blue."""
    return np.stack([images[..., c].reshape(len(images), -1) for c in range(3)],
                    axis=1).reshape(len(images), -1)


def test_binary_reader_on_hand_written_records(tmp_path):
    images, labels = random_batch(7, seed=1)
    rows = _planar_rows(images)
    content = b"".join(bytes([label]) + row.tobytes() for label, row in zip(labels, rows))
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(content)

    batch = cifar10_format.read_batch(str(path))

    np.testing.assert_array_equal(batch.images, images)
    np.testing.assert_array_equal(batch.labels, labels)
    assert batch.images.dtype == np.uint8 and batch.images.shape == (7, 32, 32, 3)
    assert batch.ids == [f"data_batch_1:{i:05d}" for i in range(7)]


def test_python_reader_on_hand_written_pickle(tmp_path):
    images, labels = random_batch(5, seed=2)
    path = tmp_path / "test_batch"
    with open(path, "wb") as batch_file:
        pickle.dump({b"batch_label": b"testing batch 1 of 1", b"labels": list(labels),
                     b"data": _planar_rows(images), b"filenames": [b"x.png"] * 5},
                    batch_file, protocol=2)

    batch = cifar10_format.read_batch(str(path))

    np.testing.assert_array_equal(batch.images, images)
    np.testing.assert_array_equal(batch.labels, labels)
    assert batch.ids[4] == "test_batch:00004"


@pytest.mark.parametrize("layout", [cifar10_format.PYTHON_LAYOUT, cifar10_format.BINARY_LAYOUT])
def test_writer_round_trips(tmp_path, layout):
    train = [random_batch(9, seed=3), random_batch(4, seed=4)]
    test = random_batch(6, seed=5)
    layout_dir = cifar10_format.write_dataset(str(tmp_path), layout, train, test)
    spec = cifar10_format.LAYOUTS[layout]

    files = sorted(glob.glob(os.path.join(layout_dir, spec.train_pattern)))
    assert [os.path.basename(f) for f in files] == [
        f"data_batch_{n}{'.bin' if layout == 'binary' else ''}" for n in (1, 2)]
    for path, (images, labels) in zip(files, train):
        batch = cifar10_format.read_batch(path)
        np.testing.assert_array_equal(batch.images, images)
        np.testing.assert_array_equal(batch.labels, labels)
    test_batch = cifar10_format.read_batch(os.path.join(layout_dir, spec.test_file), limit=2)
    np.testing.assert_array_equal(test_batch.images, test[0][:2])
    assert os.path.exists(os.path.join(layout_dir, spec.meta_file))


def test_both_layouts_hold_the_same_images(two_layout_root):
    """On the real sample when present: the python and binary files must agree."""
    python_dir = os.path.join(two_layout_root, "cifar-10-batches-py")
    binary_dir = os.path.join(two_layout_root, "cifar-10-batches-bin")
    all_images = []
    for number in range(1, 6):
        from_python = cifar10_format.read_batch(os.path.join(python_dir, f"data_batch_{number}"))
        from_binary = cifar10_format.read_batch(os.path.join(binary_dir,
                                                             f"data_batch_{number}.bin"))
        np.testing.assert_array_equal(from_python.images, from_binary.images)
        np.testing.assert_array_equal(from_python.labels, from_binary.labels)
        assert from_python.ids == from_binary.ids
        all_images.append(from_python.images)
    if sample_available() and two_layout_root == SHARED_SAMPLE:
        images = np.concatenate(all_images)
        assert len(images) == 5 * 1017
        # Channel order check against the full training set's published statistics:
        # red brightest, blue darkest, within sampling error of 5,085 images.
        channel_means = images.reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(channel_means, [125.31, 122.95, 113.87], atol=3.0)


def _write(tmp_path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def _pickled(data, labels) -> bytes:
    return pickle.dumps({b"data": data, b"labels": labels}, protocol=2)


@pytest.mark.parametrize("name, content, problem", [
    ("data_batch_1.bin", b"\x01" * (3073 * 2 + 100), "truncated record"),
    ("data_batch_1.bin", b"", "file is empty"),
    ("data_batch_1.bin", (b"\x0c" + b"\x00" * 3072), "has label 12"),
    ("data_batch_1", _pickled(np.zeros((2, 3072), np.uint8), [3, 10]), "has label 10"),
    ("data_batch_1", _pickled(np.zeros((2, 3000), np.uint8), [1, 2]), "wrong image size"),
    ("data_batch_1", _pickled(np.zeros((2, 3072), np.float32), [1, 2]), "uint8 array"),
    ("data_batch_1", _pickled(np.zeros((3, 3072), np.uint8), [1, 2]), "3 images but 2 labels"),
    ("data_batch_1", pickle.dumps({b"labels": [1]}, protocol=2), "no 'data' entry"),
    ("data_batch_1", b"this is not a pickle", "not a CIFAR-10 python batch"),
])
def test_bad_files_are_named_with_the_problem(tmp_path, name, content, problem):
    path = _write(tmp_path, name, content)
    with pytest.raises(Cifar10DataError) as error:
        cifar10_format.read_batch(path)
    assert path in str(error.value)
    assert problem in str(error.value)


def test_missing_file_is_named(tmp_path):
    missing = str(tmp_path / "data_batch_9")
    with pytest.raises(Cifar10DataError, match="data_batch_9: cannot read batch file"):
        cifar10_format.read_batch(missing)


def test_pickle_that_would_run_code_is_refused(tmp_path):
    class RunsCode:
        def __reduce__(self):
            return (os.system, ("echo owned > /dev/null",))

    path = _write(tmp_path, "data_batch_1", pickle.dumps(RunsCode(), protocol=2))
    with pytest.raises(Cifar10DataError, match="refusing to load"):
        cifar10_format.read_batch(path)


def _small_real_batch(count: int = 12) -> tuple:
    """The first images of the real sample (or synthetic ones), as (images, labels)."""
    if sample_available():
        batch = cifar10_format.read_batch(
            os.path.join(SHARED_SAMPLE, "cifar-10-batches-bin", "data_batch_1.bin"), count)
        return batch.images, batch.labels
    return random_batch(count, seed=3)


def _official_bytes(tmp_dir: str, name: str) -> bytes:
    images, labels = _small_real_batch()
    path = os.path.join(tmp_dir, name)
    cifar10_format.write_batch(path, images, labels)
    with open(path, "rb") as batch_file:
        return batch_file.read()


@pytest.fixture(scope="module")
def official_files(tmp_path_factory) -> dict:
    tmp_dir = str(tmp_path_factory.mktemp("official"))
    return {name: _official_bytes(tmp_dir, name) for name in ("data_batch_1", "data_batch_1.bin")}


def _read_or_refuse(name: str, content: bytes) -> None:
    """The outcome every reader must have: a valid batch, or Cifar10DataError naming
    the file. Anything else (another exception) fails the test."""
    try:
        batch = cifar10_format.parse_batch(name, content)
    except Cifar10DataError as error:
        assert name in str(error)
        return
    assert batch.images.dtype == np.uint8 and batch.images.shape[1:] == (32, 32, 3)
    assert batch.labels.dtype == np.int64 and len(batch.labels) == len(batch.images)
    assert ((batch.labels >= 0) & (batch.labels < 10)).all()


@FUZZ
@given(data=st.data())
@example(data=None)  # the unmutated files themselves
def test_fuzz_mutated_batch_files_are_read_or_refused_by_name(official_files, data):
    for name, original in official_files.items():
        _read_or_refuse(name, original if data is None else data.draw(mutated(original)))


@FUZZ
@given(labels=st.lists(st.one_of(st.integers(-2**70, 2**70), st.floats(), st.text(max_size=3),
                                 st.none(), st.lists(st.integers(0, 9), max_size=2)),
                       min_size=2, max_size=2))
@example(labels=["a", "b"])  # found by the fuzzer: np.asarray raised ValueError
@example(labels=[2**70, 1])  # found by the fuzzer: OverflowError
@example(labels=[[1, 2], 3])  # ragged
def test_fuzz_odd_labels_in_a_pickle_are_refused_by_name(labels):
    _read_or_refuse("data_batch_1", _pickled(np.zeros((2, 3072), np.uint8), labels))
