"""preprocessing_fn against numpy, with tft's own test utilities (a real Beam run)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_transform.beam import tft_unit
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from components.transform import preprocessing
from components.contract import IMAGE_KEY, IMAGE_XF_KEY, LABEL_KEY, LABEL_XF_KEY
from components.data.example_gen import encode_png
from tests.support.data import random_batch

RAW_FEATURE_SPEC = {
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
}


RAW_METADATA = dataset_metadata.DatasetMetadata(
    schema_utils.schema_from_feature_spec(RAW_FEATURE_SPEC))


def _raw_rows(images, labels) -> list:
    return [{IMAGE_KEY: encode_png(image), LABEL_KEY: int(label)}
            for image, label in zip(images, labels)]


def _numpy_z_score(train_images, images, labels) -> list:
    """The expected rows: population mean/std per channel over every train pixel."""
    pixels = train_images.reshape(-1, 3).astype(np.float64)
    mean, std = pixels.mean(axis=0), pixels.std(axis=0)
    return [{IMAGE_XF_KEY: ((image - mean) / std).astype(np.float32),
             LABEL_XF_KEY: int(label)} for image, label in zip(images, labels)]


class PreprocessingFnTest(tft_unit.TransformTestCase):
    # tf.test.TestCase's `test_session` context helper is not a test.
    test_session = None

    def test_per_channel_z_score_matches_numpy(self):
        images, labels = random_batch(12, seed=7)
        channel_means = images.reshape(-1, 3).mean(axis=0)
        self.assertGreater(channel_means[0] - channel_means[2], 30)  # order matters
        self.assertAnalyzeAndTransformResults(
            _raw_rows(images, labels), RAW_METADATA, preprocessing.preprocessing_fn,
            expected_data=_numpy_z_score(images, images, labels),
            desired_batch_size=5,  # several batches: the analyzers must combine them
        )

    def test_test_data_is_normalised_with_the_train_statistics(self):
        train_images, train_labels = random_batch(8, seed=8)
        test_images, test_labels = random_batch(3, seed=9)
        self.assertAnalyzeAndTransformResults(
            _raw_rows(train_images, train_labels), RAW_METADATA, preprocessing.preprocessing_fn,
            expected_data=_numpy_z_score(train_images, test_images, test_labels),
            test_data=_raw_rows(test_images, test_labels),
        )


def test_decode_accepts_png_and_jpeg_and_rejects_other_sizes():
    images, _ = random_batch(2, seed=10)
    png = encode_png(images[0])
    ramp = np.linspace(0, 255, 32)
    smooth = np.stack(np.broadcast_arrays(ramp[:, None], ramp[None, :], 128.0),
                      axis=-1).astype(np.uint8)
    jpeg = tf.io.encode_jpeg(smooth, quality=95).numpy()
    decoded = preprocessing.decode_images(tf.constant([[png], [jpeg]])).numpy()
    np.testing.assert_array_equal(decoded[0], images[0])
    assert decoded.shape == (2, 32, 32, 3)
    assert np.abs(decoded[1] - smooth).mean() < 3  # JPEG is lossy

    too_big = encode_png(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match="64,64,3"):
        preprocessing.decode_images(tf.constant([too_big]))
    with pytest.raises(tf.errors.InvalidArgumentError):
        preprocessing.decode_images(tf.constant([b"not an image"]))
