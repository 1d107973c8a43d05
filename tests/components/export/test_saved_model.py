"""The exported SavedModel: every signature equals the in-process model on the same
pixels, with the Transform graph's Z-score applied exactly once; TensorFlow's TF1
loader (TF Serving's path) runs every signature to the same outputs as
`tf.saved_model.load`, on the Trainer's export and on the pushed version; the warmup
file holds the images it was given."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import prediction_log_pb2

from components.contract import (CLASS_IDS_OUTPUT, CLASS_NAMES, CLASS_NAMES_OUTPUT,
                                 DEFAULT_SIGNATURE, EXAMPLES_INPUT, EXAMPLES_SIGNATURE,
                                 IMAGES_INPUT, PIXELS_INPUT, PIXELS_SIGNATURE, PROBABILITIES_OUTPUT,
                                 WARMUP_REQUESTS_FILE)
from components.data import source as data_source
from components.data.example_gen import encode_png, to_example
from components.export.saved_model import export_serving_model
from components.training.models import build_model
from components.export.warmup_file import WARMUP_BATCH_SIZES
from tests.support.data import first_images
from tests.support.tf1_session import run_signatures


def _softmax(logits):
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def exported(pipeline_run, tmp_path_factory):
    config, summary = pipeline_run
    source = data_source.locate(config.data.data_dir)
    train_pixels = first_images(source, source.train_pattern, 30).reshape(-1, 3)
    test_images = first_images(source, source.test_pattern, 30)[:12]
    tft_output = tft.TFTransformOutput(
        summary["components"]["Transform"]["outputs"]["transform_graph"])
    keras.utils.set_random_seed(3)
    # he_uniform: an untrained model whose logits move enough with its input that the
    # comparisons below tell a Z-score applied once from none or twice (PyTorch's
    # default initialisation, the Trainer's, leaves them within 1e-3 of uniform).
    model = build_model("resnet9", 5e-4, kernel_initializer="he_uniform")
    export_dirs = {}
    for tta_flip in (False, True):
        export_dirs[tta_flip] = str(tmp_path_factory.mktemp(f"export-tta-{tta_flip}"))
        export_serving_model(model, tft_output, export_dirs[tta_flip], tta_flip=tta_flip,
                             warmup_images=[encode_png(image) for image in test_images])
    return {"model": model, "dirs": export_dirs, "images": test_images,
            "mean": train_pixels.mean(axis=0), "std": train_pixels.std(axis=0)}


def _expected_probabilities(model, images_xf, tta_flip):
    logits = np.asarray(model(images_xf.astype(np.float32), training=False))
    if tta_flip:
        logits = (logits + np.asarray(model(images_xf[:, :, ::-1].astype(np.float32),
                                            training=False))) / 2
    return _softmax(logits)


@pytest.mark.parametrize("tta_flip", [False, True])
def test_every_signature_equals_the_in_process_model(exported, tta_flip):
    images = exported["images"]
    images_xf = (images - exported["mean"]) / exported["std"]
    expected = _expected_probabilities(exported["model"], images_xf, tta_flip)
    served = tf.saved_model.load(exported["dirs"][tta_flip]).signatures

    outputs = {
        DEFAULT_SIGNATURE: served[DEFAULT_SIGNATURE](**{
            IMAGES_INPUT: tf.constant([encode_png(image) for image in images])}),
        EXAMPLES_SIGNATURE: served[EXAMPLES_SIGNATURE](**{EXAMPLES_INPUT: tf.constant(
            [to_example(f"x:{i}", image, 0).SerializeToString()
             for i, image in enumerate(images)])}),
        PIXELS_SIGNATURE: served[PIXELS_SIGNATURE](**{PIXELS_INPUT: tf.constant(images)}),
    }
    for name, output in outputs.items():
        np.testing.assert_allclose(output[PROBABILITIES_OUTPUT].numpy(), expected, atol=2e-5,
                                   err_msg=name)
        class_ids = output[CLASS_IDS_OUTPUT].numpy()
        np.testing.assert_array_equal(class_ids, expected.argmax(axis=-1))
        assert [n.decode() for n in output[CLASS_NAMES_OUTPUT].numpy()] == [
            CLASS_NAMES[i] for i in class_ids]


def test_the_z_score_is_applied_exactly_once(exported):
    images = exported["images"]
    mean, std = exported["mean"], exported["std"]
    served = tf.saved_model.load(exported["dirs"][False]).signatures[PIXELS_SIGNATURE](
        **{PIXELS_INPUT: tf.constant(images)})[PROBABILITIES_OUTPUT].numpy()
    once = _expected_probabilities(exported["model"], (images - mean) / std, False)
    never = _expected_probabilities(exported["model"], images.astype(np.float64), False)
    twice = _expected_probabilities(exported["model"], ((images - mean) / std - mean) / std,
                                    False)
    np.testing.assert_allclose(served, once, atol=2e-5)
    assert np.abs(served - never).max() > 1e-3
    assert np.abs(served - twice).max() > 1e-3


def test_images_of_another_size_are_rejected(exported):
    served = tf.saved_model.load(exported["dirs"][False]).signatures[DEFAULT_SIGNATURE]
    with pytest.raises(tf.errors.InvalidArgumentError):
        served(**{IMAGES_INPUT: tf.constant([encode_png(np.zeros((40, 40, 3), np.uint8))])})


def test_the_export_holds_warmup_requests_of_the_images_given(exported):
    given = [encode_png(image) for image in exported["images"]]
    path = os.path.join(exported["dirs"][False], WARMUP_REQUESTS_FILE)
    batches = [tf.make_ndarray(prediction_log_pb2.PredictionLog.FromString(
        record.numpy()).predict_log.request.inputs[IMAGES_INPUT])
        for record in tf.data.TFRecordDataset(path)]
    assert [len(batch) for batch in batches] == list(WARMUP_BATCH_SIZES)
    sent = [image for batch in batches for image in batch]
    # The images in turn, repeated when fewer than the requests hold.
    assert sent == [given[index % len(given)] for index in range(len(sent))]


def _real_requests(images: np.ndarray) -> dict:
    """One request per signature on the same real images: PNG and JPEG bytes mixed,
    serialized tf.Examples, uint8 pixels."""
    encoded = [encode_png(image) if index % 2 else tf.io.encode_jpeg(image).numpy()
               for index, image in enumerate(images)]
    return {
        DEFAULT_SIGNATURE: {IMAGES_INPUT: np.array(encoded, dtype=object)},
        EXAMPLES_SIGNATURE: {EXAMPLES_INPUT: np.array(
            [to_example(f"x:{i}", image, 0).SerializeToString()
             for i, image in enumerate(images)], dtype=object)},
        PIXELS_SIGNATURE: {PIXELS_INPUT: images},
    }


def assert_tf_serving_runs_it_as_tf2_does(saved_model_dir: str, images: np.ndarray) -> None:
    requests = _real_requests(images)
    served = tf.saved_model.load(saved_model_dir).signatures
    expected = {name: {key: value.numpy() for key, value in served[name](**{
        key: tf.constant(value) for key, value in inputs.items()}).items()}
        for name, inputs in requests.items()}
    by_session = run_signatures(saved_model_dir, requests)
    assert set(by_session) == set(expected) == {DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE,
                                                 PIXELS_SIGNATURE}
    for name in expected:
        assert set(by_session[name]) == set(expected[name]), name
        np.testing.assert_allclose(by_session[name][PROBABILITIES_OUTPUT],
                                   expected[name][PROBABILITIES_OUTPUT], atol=1e-6,
                                   err_msg=name)
        np.testing.assert_array_equal(by_session[name][CLASS_IDS_OUTPUT],
                                      expected[name][CLASS_IDS_OUTPUT])
        np.testing.assert_array_equal(by_session[name][CLASS_NAMES_OUTPUT],
                                      expected[name][CLASS_NAMES_OUTPUT])


@pytest.mark.parametrize("tta_flip", [False, True])
def test_tf_servings_loader_runs_every_signature_of_the_export(exported, tta_flip):
    assert_tf_serving_runs_it_as_tf2_does(exported["dirs"][tta_flip], exported["images"])


def test_tf_servings_loader_runs_every_signature_of_the_pushed_version(pushed_model,
                                                                       exported):
    assert_tf_serving_runs_it_as_tf2_does(pushed_model[2], exported["images"])
