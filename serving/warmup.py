"""Replays a version's warmup requests before it serves, as TF Serving does.

The file (components.contract.WARMUP_REQUESTS_FILE, inside the SavedModel) is a
TFRecord file of tensorflow.serving.PredictionLog records. Each predict or classify
request in it runs through the loaded version the way a client's would (so tracing
and allocation happen then, not on the first client request). A file that cannot be
read, a record of another kind, or a request the model refuses fails the load: the
version is not served and the previous one keeps serving. Warmup requests are not
client requests: they are not counted in the metrics. Each one runs the model inside
one of the server's inference slots, like a client's, so that a load under traffic
does not run the model beyond the server's bound (the wait delays only the poller).
"""

from __future__ import annotations

import os
import threading
from typing import Optional

from components.contract import WARMUP_REQUESTS_FILE

# TF Serving's own bound on the records of one warmup file.
MAX_WARMUP_RECORDS = 1000


class WarmupError(RuntimeError):
    """The warmup file could not be replayed; the message names the file and record."""


def replay(loaded, slots: Optional[threading.Semaphore] = None) -> int:
    """Runs every request of `loaded`'s warmup file through it, each holding one of
    `slots`; returns how many (0 without a file)."""
    path = os.path.join(loaded.path, WARMUP_REQUESTS_FILE)
    if not os.path.exists(path):
        return 0
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    from serving import inference
    from serving.errors import ServingError

    replayed = 0
    try:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            if replayed == MAX_WARMUP_RECORDS:
                raise WarmupError(f"{path}: more than {MAX_WARMUP_RECORDS} records")
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record)
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                request = log.predict_log.request
                inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
                inference.run(loaded, request.model_spec.signature_name, inputs,
                              list(request.output_filter), slots=slots)
            elif kind == "classify_log":
                request = log.classify_log.request
                examples = list(request.input.example_list.examples)
                inference.classify(loaded, [e.SerializeToString() for e in examples],
                                   request.model_spec.signature_name or None, slots=slots)
            else:
                raise WarmupError(f"{path}: record {replayed + 1} is a {kind or 'empty'} "
                                  f"log; only predict and classify requests are replayed")
            replayed += 1
    except (tf.errors.OpError, DecodeError, ValueError, TypeError) as error:
        raise WarmupError(f"{path}: record {replayed + 1} cannot be replayed: "
                          f"{type(error).__name__}: {getattr(error, 'message', error)}") from None
    except ServingError as error:
        raise WarmupError(f"{path}: record {replayed + 1} was refused by the model: "
                          f"{error.message}") from None
    return replayed
