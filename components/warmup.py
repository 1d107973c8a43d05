"""The warmup file of an exported model: requests TF Serving replays when it loads a
version, before it reports the version AVAILABLE (the embedded server does the same).

The first call of a freshly loaded SavedModel pays for instantiating and optimising
its function graph and for allocating the kernels' buffers at each input shape; with
the file, the server pays that at load time instead of a client's first request.

The records are `PredictionLog`s holding a `PredictRequest` for `serving_default`
(encoded PNGs in `images`), one per batch size in `WARMUP_BATCH_SIZES`. The images are
real test images: the Trainer holds them Z-scored, and `pixels_from_transformed`
turns them back into the exact uint8 pixels the Transform graph was given.
"""

from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from components.contract import (DEFAULT_SIGNATURE, IMAGE_CHANNELS, IMAGE_KEY, IMAGE_SHAPE,
                                 IMAGE_XF_KEY, IMAGES_INPUT, WARMUP_BATCH_SIZES,
                                 WARMUP_REQUESTS_FILE)

# One record per size in WARMUP_BATCH_SIZES: the graph takes any batch, but the kernels'
# buffers and oneDNN's primitives are made per shape; three records keep the replay to
# well under a second.


def pixels_from_transformed(images_xf: np.ndarray, tft_output) -> np.ndarray:
    """Z-scored float images (what the Trainer reads) -> the uint8 pixels they came from.

    The Transform graph maps each channel affinely, z = (x - mean) / std; sending an
    all-0 and an all-255 image through the graph itself gives both constants, so this
    never re-implements the normalisation."""
    extremes = np.stack([np.zeros(IMAGE_SHAPE, np.uint8), np.full(IMAGE_SHAPE, 255, np.uint8)])
    encoded = tf.constant([[tf.io.encode_png(image).numpy()] for image in extremes])
    transformed = tft_output.transform_features_layer()({IMAGE_KEY: encoded})[IMAGE_XF_KEY]
    z_black, z_white = transformed.numpy().reshape(2, -1, IMAGE_CHANNELS)[:, 0, :]
    std = 255.0 / (z_white.astype(np.float64) - z_black)
    mean = -z_black * std
    pixels = np.rint(images_xf.astype(np.float64) * std + mean)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def encode_pngs(pixels: np.ndarray) -> List[bytes]:
    """uint8 [N, 32, 32, 3] -> PNG bytes of each image."""
    return [tf.io.encode_png(image).numpy() for image in pixels]


def warmup_requests(encoded_images: Sequence[bytes],
                    batch_sizes: Sequence[int] = WARMUP_BATCH_SIZES
                    ) -> List[prediction_log_pb2.PredictionLog]:
    """One PredictionLog per batch size, its images taken in turn from `encoded_images`
    (repeated when there are fewer)."""
    if not encoded_images:
        raise ValueError("warmup requests need at least one encoded image")
    records, next_image = [], 0
    for batch_size in batch_sizes:
        batch = [encoded_images[(next_image + i) % len(encoded_images)]
                 for i in range(batch_size)]
        next_image += batch_size
        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = DEFAULT_SIGNATURE
        request.inputs[IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
        records.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)))
    return records


def write_warmup_file(export_dir: str, encoded_images: Sequence[bytes]) -> str:
    """Writes the warmup file into the SavedModel at `export_dir`; returns its path."""
    path = os.path.join(export_dir, WARMUP_REQUESTS_FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for record in warmup_requests(encoded_images):
            writer.write(record.SerializeToString())
    return path
