"""The ExampleGen executor run for real on Beam, over files in the official layouts."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.contract import (IMAGE_ID_KEY, IMAGE_KEY, IMAGE_SHAPE, LABEL_KEY, TEST_SPLIT,
                                 TRAIN_SPLIT)
from components.data import cifar10_format, example_gen as cifar10_example_gen
from components.data import source as data_source
from tests.support.data import write_small_dataset


def _run_executor(source: data_source.DataSource, output_uri: str,
                  images_per_file=None) -> None:
    examples = standard_artifacts.Examples()
    examples.uri = output_uri
    input_config = example_gen_pb2.Input(splits=[
        example_gen_pb2.Input.Split(name=name, pattern=pattern)
        for name, pattern in source.split_patterns().items()])
    cifar10_example_gen.Executor().Do(
        input_dict={},
        output_dict={"examples": [examples]},
        exec_properties={
            "input_base": source.input_base,
            "input_config": proto_utils.proto_to_json(input_config),
            "output_config": proto_utils.proto_to_json(example_gen_pb2.Output()),
            "custom_config": proto_utils.proto_to_json(
                cifar10_example_gen.make_custom_config(images_per_file)),
        })


def _read_split(output_uri: str, split: str) -> dict:
    files = glob.glob(os.path.join(output_uri, f"Split-{split}", "*"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    by_id = {}
    for record in records.as_numpy_iterator():
        example = tf.train.Example.FromString(record)
        features = example.features.feature
        image_id = features[IMAGE_ID_KEY].bytes_list.value[0].decode()
        image = tf.io.decode_png(features[IMAGE_KEY].bytes_list.value[0]
                                 ).numpy()
        assert image.shape == IMAGE_SHAPE
        by_id[image_id] = (image, features[LABEL_KEY].int64_list.value[0])
    return by_id


@pytest.mark.parametrize("layout", [cifar10_format.PYTHON_LAYOUT, cifar10_format.BINARY_LAYOUT])
def test_every_image_becomes_one_example(tmp_path, layout):
    root = str(tmp_path / "data")
    arrays = write_small_dataset(root, layout, train_sizes=(11, 7), test_size=5)
    output_uri = str(tmp_path / "examples")

    _run_executor(data_source.locate(root), output_uri)

    train = _read_split(output_uri, TRAIN_SPLIT)
    assert len(train) == 18
    for batch_number, (images, labels) in enumerate(arrays["train"], start=1):
        for index in range(len(labels)):
            image, label = train[f"data_batch_{batch_number}:{index:05d}"]
            np.testing.assert_array_equal(image, images[index])
            assert label == labels[index]
    test = _read_split(output_uri, TEST_SPLIT)
    assert sorted(test) == [f"test_batch:{i:05d}" for i in range(5)]
    np.testing.assert_array_equal(test["test_batch:00003"][0], arrays["test"][0][3])


def test_images_per_file_keeps_the_first_images(tmp_path):
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.BINARY_LAYOUT, train_sizes=(9, 9), test_size=9)
    output_uri = str(tmp_path / "examples")
    _run_executor(data_source.locate(root), output_uri, images_per_file=4)
    assert sorted(_read_split(output_uri, TRAIN_SPLIT)) == [
        f"data_batch_{b}:{i:05d}" for b in (1, 2) for i in range(4)]
    assert len(_read_split(output_uri, TEST_SPLIT)) == 4


def test_bad_file_fails_the_beam_job_with_the_file_named(tmp_path):
    """Without the runner's up-front check (Kubeflow, Airflow), Beam itself must fail."""
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.BINARY_LAYOUT)
    bad_file = os.path.join(root, "cifar-10-batches-bin", "data_batch_2.bin")
    with open(bad_file, "ab") as batch_file:
        batch_file.write(b"\x00" * 10)
    with pytest.raises(Exception) as error:
        _run_executor(data_source.locate(root), str(tmp_path / "examples"))
    assert bad_file in str(error.value) and "truncated record" in str(error.value)


def test_data_at_a_uri_is_located_validated_and_read(tmp_path):
    """The data location may be a URI of TensorFlow's filesystems (gs:// on a cluster):
    here TensorFlow's in-memory ram://, which this process's in-process Beam workers
    share. Located, checked and read by the real executor as a local folder is."""
    local_root = str(tmp_path / "data")
    write_small_dataset(local_root, cifar10_format.BINARY_LAYOUT, train_sizes=(6, 4),
                        test_size=3)
    uri_root = f"ram://{tmp_path.name}/data"
    for folder, _, names in os.walk(local_root):
        target = uri_root + folder[len(local_root):]
        tf.io.gfile.makedirs(target)
        for name in names:
            tf.io.gfile.copy(os.path.join(folder, name), f"{target}/{name}")

    source = data_source.resolve(uri_root)
    assert source.input_base == uri_root and source.layout == cifar10_format.BINARY_LAYOUT
    assert data_source.validate(source) == {TRAIN_SPLIT: 10, TEST_SPLIT: 3}
    _run_executor(source, str(tmp_path / "from_uri"))
    _run_executor(data_source.locate(local_root), str(tmp_path / "from_folder"))
    for split in (TRAIN_SPLIT, TEST_SPLIT):
        from_uri = _read_split(str(tmp_path / "from_uri"), split)
        from_folder = _read_split(str(tmp_path / "from_folder"), split)
        assert sorted(from_uri) == sorted(from_folder) and len(from_uri) in (10, 3)
        for image_id, (image, label) in from_folder.items():
            np.testing.assert_array_equal(from_uri[image_id][0], image)
            assert from_uri[image_id][1] == label

    with pytest.raises(cifar10_format.Cifar10DataError, match="no such file"):
        data_source.resolve(uri_root + "/missing")
    with pytest.raises(cifar10_format.Cifar10DataError, match="extracted on this machine"):
        data_source.resolve("gs://bucket/cifar-10-binary.tar.gz")
