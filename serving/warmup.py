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
from typing import Iterator, Optional, Tuple

from components.contract import WARMUP_REQUESTS_FILE

# TF Serving's own bound on the records of one warmup file.
MAX_WARMUP_RECORDS = 1000


class WarmupError(RuntimeError):
    """The warmup file could not be replayed; the message names the file and record."""


def warmup_file(version_dir: str) -> Optional[str]:
    """The path of a version's warmup file, or None when it has none. The version may
    live at a URI (gs://), as TF Serving's may."""
    import tensorflow as tf

    path = os.path.join(version_dir, WARMUP_REQUESTS_FILE)
    return path if tf.io.gfile.exists(path) else None


def read_requests(path: str) -> Iterator[Tuple[str, object]]:
    """(kind, request) for each record of a warmup file, in order: "predict" with a
    PredictRequest or "classify" with a ClassificationRequest. A file that cannot be
    read, a record of another kind or too many records raise WarmupError."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    count = 0
    try:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            if count == MAX_WARMUP_RECORDS:
                raise WarmupError(f"{path}: more than {MAX_WARMUP_RECORDS} records")
            count += 1
            log = prediction_log_pb2.PredictionLog()
            log.ParseFromString(record)
            kind = log.WhichOneof("log_type")
            if kind == "predict_log":
                yield "predict", log.predict_log.request
            elif kind == "classify_log":
                yield "classify", log.classify_log.request
            else:
                raise WarmupError(f"{path}: record {count} is a {kind or 'empty'} "
                                  f"log; only predict and classify requests are replayed")
    except (tf.errors.OpError, DecodeError) as error:
        raise WarmupError(f"{path}: record {count + 1} cannot be replayed: "
                          f"{type(error).__name__}: {getattr(error, 'message', error)}") from None


def replay(loaded, slots: Optional[threading.Semaphore] = None) -> int:
    """Runs every request of `loaded`'s warmup file through it, each holding one of
    `slots`; returns how many (0 without a file)."""
    path = warmup_file(loaded.path)
    if path is None:
        return 0
    import tensorflow as tf

    from serving import inference
    from serving.errors import ServingError

    replayed = 0
    try:
        for kind, request in read_requests(path):
            if kind == "predict":
                inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
                inference.run(loaded, request.model_spec.signature_name, inputs,
                              list(request.output_filter), slots=slots)
            else:
                examples = list(request.input.example_list.examples)
                inference.classify(loaded, [e.SerializeToString() for e in examples],
                                   request.model_spec.signature_name or None, slots=slots)
            replayed += 1
    except (tf.errors.OpError, ValueError, TypeError) as error:
        raise WarmupError(f"{path}: record {replayed + 1} cannot be replayed: "
                          f"{type(error).__name__}: {getattr(error, 'message', error)}") from None
    except ServingError as error:
        raise WarmupError(f"{path}: record {replayed + 1} was refused by the model: "
                          f"{error.message}") from None
    return replayed
