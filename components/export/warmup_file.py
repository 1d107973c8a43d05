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

from components.contract import (DEFAULT_SIGNATURE, IMAGES_INPUT, WARMUP_BATCH_SIZES,
                                 WARMUP_REQUESTS_FILE)
from components.transform.preprocessing import channel_statistics

# One record per size in WARMUP_BATCH_SIZES: the graph takes any batch, but the kernels'
# buffers and oneDNN's primitives are made per shape; three records keep the replay to
# well under a second.


def pixels_from_transformed(images_xf: np.ndarray, tft_output) -> np.ndarray:
    """Z-scored float images (what the Trainer reads) -> the uint8 pixels they came from,
    with the statistics the Transform graph itself holds (`channel_statistics`)."""
    mean, std = channel_statistics(tft_output)
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
