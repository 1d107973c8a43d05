"""The request log read back: one row per image with what the model answered, and the
records of one model and time window, a file cut short by a writer kept to what it
holds."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components.contract import (CLASS_NAMES, EXAMPLES_INPUT, IMAGE_KEY, IMAGES_INPUT,
                                 PIXELS_INPUT, PROBABILITIES_OUTPUT)
from components.data.example_gen import encode_png
from components.monitoring.served_traffic import read_records, served_images


def _probabilities(count: int, class_id: int) -> np.ndarray:
    probabilities = np.full((count, len(CLASS_NAMES)), 0.05, np.float32)
    probabilities[:, class_id] = 0.55
    return probabilities


def test_logged_records_become_one_row_per_image():
    """Predict logs of the three signatures' inputs and a classify log."""
    pixels = np.stack([np.full((32, 32, 3), value, np.uint8) for value in (10, 200)])
    records = []
    for input_name, value in ((IMAGES_INPUT, [encode_png(image) for image in pixels]),
                              (PIXELS_INPUT, pixels)):
        record = prediction_log_pb2.PredictionLog()
        record.log_metadata.model_spec.signature_name = input_name
        record.predict_log.request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
        record.predict_log.response.outputs[PROBABILITIES_OUTPUT].CopyFrom(
            tf.make_tensor_proto(_probabilities(2, 4)))
        records.append(record)
    example = tf.train.Example()
    example.features.feature[IMAGE_KEY].bytes_list.value.append(encode_png(pixels[1]))
    examples = prediction_log_pb2.PredictionLog()
    examples.predict_log.request.inputs[EXAMPLES_INPUT].CopyFrom(
        tf.make_tensor_proto([example.SerializeToString()]))
    examples.predict_log.response.outputs[PROBABILITIES_OUTPUT].CopyFrom(
        tf.make_tensor_proto(_probabilities(1, 7)))
    classify = prediction_log_pb2.PredictionLog()
    classify.classify_log.request.input.example_list.examples.add().CopyFrom(example)
    classification = classify.classify_log.response.result.classifications.add()
    for class_id, name in enumerate(CLASS_NAMES):
        classification.classes.add(label=name, score=0.9 if class_id == 2 else 0.01)
    served = served_images(records + [examples, classify])
    assert served.formats == ["PNG", "PNG", "pixels", "pixels", "PNG", "PNG"]
    assert served.sizes == ["32x32"] * 6
    np.testing.assert_allclose(served.channel_means[:, 0], [10, 200, 10, 200, 200, 200])
    np.testing.assert_allclose(served.channel_mean_squares[:, 0],
                               [100, 40000, 100, 40000, 40000, 40000])
    assert served.predicted.tolist() == [4, 4, 4, 4, 7, 2]
    np.testing.assert_allclose(served.confidence, [0.55] * 5 + [0.9])


def test_records_are_read_for_one_model_and_time_and_a_cut_file_keeps_its_records(tmp_path):
    records = []
    for index, (name, seconds) in enumerate([("cifar10", 100), ("cifar10", 200),
                                             ("other", 200)]):
        record = prediction_log_pb2.PredictionLog()
        record.log_metadata.model_spec.name = name
        record.log_metadata.model_spec.version.value = index
        record.log_metadata.timestamp_secs = seconds
        records.append(record)
    whole = tmp_path / "requests-1-1-000001.tfrecord"
    cut = tmp_path / "requests-2-1-000002.tfrecord"
    with tf.io.TFRecordWriter(str(whole)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
    cut.write_bytes(whole.read_bytes()[:-5])  # the last record half-written
    (tmp_path / "notes.txt").write_text("not a request file")
    logged = read_records(str(tmp_path), since_secs=150, model_name="cifar10")
    assert logged.files == 2
    assert [record.log_metadata.model_spec.version.value for record in logged.records] == [1, 1]
    assert len(logged.unreadable) == 1 and logged.unreadable[0].startswith(cut.name)


def test_what_cannot_be_read_is_listed_and_the_rest_is_read(tmp_path):
    """A folder named like a request file and a symlink loop: each listed as unreadable
    with its reason, in the user's terms, and the good file's records still read."""
    record = prediction_log_pb2.PredictionLog()
    record.log_metadata.model_spec.name = "cifar10"
    with tf.io.TFRecordWriter(str(tmp_path / "requests-3-1-000003.tfrecord")) as writer:
        writer.write(record.SerializeToString())
    (tmp_path / "requests-1-dir.tfrecord").mkdir()
    os.symlink("requests-2-b.tfrecord", tmp_path / "requests-2-a.tfrecord")
    os.symlink("requests-2-a.tfrecord", tmp_path / "requests-2-b.tfrecord")
    logged = read_records(str(tmp_path))
    assert len(logged.records) == 1 and logged.files == 4
    assert logged.unreadable == [
        "requests-1-dir.tfrecord: Is a directory",
        "requests-2-a.tfrecord: Too many levels of symbolic links",
        "requests-2-b.tfrecord: Too many levels of symbolic links"]
