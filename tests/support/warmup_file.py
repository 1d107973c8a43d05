"""Warmup files for the serving tests, written with tensorflow-serving-api's protos as
TF Serving reads them: PredictionLog records in a TFRecord file inside a SavedModel."""

from __future__ import annotations

import os

from components.contract import DEFAULT_SIGNATURE, IMAGES_INPUT, WARMUP_REQUESTS_FILE


def write_warmup_file(version_dir: str, batches, model_name: str = "cifar10") -> str:
    """One predict request for `serving_default` per batch of encoded images; returns
    the file's path."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    path = os.path.join(version_dir, WARMUP_REQUESTS_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for images in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = DEFAULT_SIGNATURE
            request.inputs[IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(list(images),
                                                                       dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path
