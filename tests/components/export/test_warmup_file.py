"""The warmup file: the version the smoke run's Trainer exported and the Pusher pushed
carries it, every record is a PredictRequest for serving_default at the batch sizes
clients send, each replays through the loaded SavedModel, and its images are the
data's own test images, recovered exactly from their Z-scored form."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import prediction_log_pb2

from components.contract import (CLASS_IDS_OUTPUT, DEFAULT_SIGNATURE, IMAGE_KEY, IMAGE_XF_KEY,
                                 IMAGES_INPUT, PROBABILITIES_OUTPUT, WARMUP_REQUESTS_FILE)
from components.data import source as data_source
from components.export.warmup_file import WARMUP_BATCH_SIZES, encode_pngs, pixels_from_transformed
from tests.support.data import first_images


@pytest.fixture(scope="module")
def smoke_run(pipeline_run):
    config, summary = pipeline_run
    source = data_source.locate(config.data.data_dir)
    return {"tft_output": tft.TFTransformOutput(
                summary["components"]["Transform"]["outputs"]["transform_graph"]),
            "test_images": first_images(source, source.test_pattern, 30)}


def _read_records(version_dir: str) -> list:
    path = os.path.join(version_dir, WARMUP_REQUESTS_FILE)
    assert os.path.isfile(path), f"no warmup file in {version_dir}"
    records = []
    for serialized in tf.data.TFRecordDataset(path):
        records.append(prediction_log_pb2.PredictionLog.FromString(serialized.numpy()))
    return records


def test_the_pushed_version_replays_its_warmup_requests(pushed_model):
    records = _read_records(pushed_model[2])
    requests = [record.predict_log.request for record in records]
    assert all(record.WhichOneof("log_type") == "predict_log" for record in records)
    assert [request.model_spec.signature_name for request in requests] == \
        [DEFAULT_SIGNATURE] * len(WARMUP_BATCH_SIZES)
    serve = tf.saved_model.load(pushed_model[2]).signatures[DEFAULT_SIGNATURE]
    for request, batch_size in zip(requests, WARMUP_BATCH_SIZES):
        assert list(request.inputs) == [IMAGES_INPUT]
        images = tf.make_ndarray(request.inputs[IMAGES_INPUT])
        assert images.shape == (batch_size,)
        outputs = serve(**{IMAGES_INPUT: tf.constant(images)})
        assert outputs[CLASS_IDS_OUTPUT].shape == (batch_size,)
        np.testing.assert_allclose(outputs[PROBABILITIES_OUTPUT].numpy().sum(axis=-1), 1.0,
                                   rtol=1e-5)


def test_the_warmup_images_are_the_data_s_test_images(pushed_model, smoke_run):
    test_images = {image.tobytes() for image in smoke_run["test_images"]}
    for record in _read_records(pushed_model[2]):
        for encoded in tf.make_ndarray(record.predict_log.request.inputs[IMAGES_INPUT]):
            pixels = tf.io.decode_png(encoded).numpy()
            assert pixels.tobytes() in test_images


def test_z_scored_images_go_back_to_their_exact_pixels(smoke_run):
    images = smoke_run["test_images"]
    transformed = smoke_run["tft_output"].transform_features_layer()(
        {IMAGE_KEY: tf.constant([[png] for png in encode_pngs(images)])})[IMAGE_XF_KEY]
    recovered = pixels_from_transformed(transformed.numpy(), smoke_run["tft_output"])
    assert recovered.dtype == np.uint8
    np.testing.assert_array_equal(recovered, images)
