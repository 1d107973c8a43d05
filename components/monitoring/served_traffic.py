"""What a served model was asked and answered, read back from the request log.

The request log (`python -m serving serve --log-requests`, or the logging proxy in
front of TF Serving) holds TF Serving's PredictionLog protos: a PredictLog per predict
request, a ClassifyLog per classify request, each with the version and signature that
answered and the time. This module turns them into one row per image: its format and
declared size, its per-channel pixel mean and mean square, and the model's predicted
class and top-1 confidence, which is what `traffic_drift` compares with training.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
from typing import Dict, List, Optional

import numpy as np

from components.console import UserError
from components.contract import (CLASS_NAMES, EXAMPLES_INPUT, IMAGE_CHANNELS, IMAGE_KEY,
                                 IMAGES_INPUT, PIXELS_INPUT, PROBABILITIES_OUTPUT,
                                 request_log_files)
from components.data.tf_errors import plain_message

PIXELS_FORMAT = "pixels"  # a uint8 array sent to the pixels signature, not a file
UNDECODABLE = "undecodable"  # the format of bytes that do not decode as an image


class RequestLogError(UserError, ValueError):
    """A request log directory that cannot be read as one."""


@dataclasses.dataclass
class LoggedRecords:
    records: list  # PredictionLog protos, oldest file first
    files: int
    # "<file name>: <why>" for files (or their tails) that could not be read.
    unreadable: List[str]


def read_records(directory: str, since_secs: Optional[float] = None,
                 model_name: Optional[str] = None) -> LoggedRecords:
    """Every PredictionLog in `directory`'s request files, logged at or after
    `since_secs` (seconds since the epoch) when given, answered by `model_name` when
    given (a proxy in front of TF Serving logs every model it serves)."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow_serving.apis import prediction_log_pb2

    if not os.path.isdir(directory):
        raise RequestLogError(f"{directory}: no such request log directory")
    names = request_log_files(directory)
    records, unreadable = [], []
    for name in names:
        try:
            for serialized in tf.data.TFRecordDataset(os.path.join(directory, name)):
                record = prediction_log_pb2.PredictionLog.FromString(serialized.numpy())
                if ((since_secs is None or record.log_metadata.timestamp_secs >= since_secs)
                        and (model_name is None
                             or record.log_metadata.model_spec.name == model_name)):
                    records.append(record)
        # A file the server is writing may end in a partial record; the server deletes
        # the oldest file under its cap, maybe while it is read here; anything named
        # like a request file may be a folder or a file that cannot be read. Each is
        # listed, and the rest is judged.
        except (tf.errors.OpError, OSError, DecodeError) as error:
            path = os.path.join(directory, name)
            unreadable.append(f"{name}: {plain_message(error, path)}")
    return LoggedRecords(records, len(names), unreadable)


def versions_logged(records: list) -> Dict[int, int]:
    """Version -> number of records it answered."""
    return dict(collections.Counter(record.log_metadata.model_spec.version.value
                                    for record in records))


@dataclasses.dataclass
class ServedImages:
    """One entry per image the logged requests held, in log order."""

    formats: List[str]  # PNG, JPEG, BMP, PIXELS_FORMAT or UNDECODABLE
    sizes: List[str]  # "<width>x<height>" as declared, "" when undecodable
    channel_means: np.ndarray  # float64 [N, 3], 0..255, NaN when undecodable
    channel_mean_squares: np.ndarray  # float64 [N, 3]
    predicted: np.ndarray  # int64 [N], class ids
    confidence: np.ndarray  # float32 [N], the top-1 probability
    signatures: Dict[str, int]  # signature name -> images

    def __len__(self) -> int:
        return len(self.formats)


def _image_facts(encoded: bytes) -> tuple:
    """(format, declared size, per-channel mean, per-channel mean square)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(encoded)) as image:
            image_format, (width, height) = image.format, image.size
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    except Exception:  # noqa: BLE001 (a served model refuses these; a logged one is a finding)
        nothing = np.full(IMAGE_CHANNELS, np.nan)
        return UNDECODABLE, "", nothing, nothing
    by_channel = pixels.reshape(-1, IMAGE_CHANNELS)
    return (image_format, f"{width}x{height}", by_channel.mean(axis=0),
            (by_channel ** 2).mean(axis=0))


def _pixels_facts(pixels: np.ndarray) -> tuple:
    by_channel = pixels.astype(np.float64).reshape(-1, IMAGE_CHANNELS)
    return (PIXELS_FORMAT, f"{pixels.shape[1]}x{pixels.shape[0]}", by_channel.mean(axis=0),
            (by_channel ** 2).mean(axis=0))


def _predict_rows(log) -> tuple:
    """(image facts, probabilities) of one PredictLog."""
    import tensorflow as tf

    inputs = log.request.inputs
    if IMAGES_INPUT in inputs:
        facts = [_image_facts(encoded)
                 for encoded in tf.make_ndarray(inputs[IMAGES_INPUT]).reshape(-1)]
    elif PIXELS_INPUT in inputs:
        facts = [_pixels_facts(pixels) for pixels in tf.make_ndarray(inputs[PIXELS_INPUT])]
    elif EXAMPLES_INPUT in inputs:
        facts = [_example_facts(tf.train.Example.FromString(serialized))
                 for serialized in tf.make_ndarray(inputs[EXAMPLES_INPUT]).reshape(-1)]
    else:
        return [], np.zeros((0, len(CLASS_NAMES)))
    if PROBABILITIES_OUTPUT not in log.response.outputs:
        return [], np.zeros((0, len(CLASS_NAMES)))
    return facts, tf.make_ndarray(log.response.outputs[PROBABILITIES_OUTPUT])


def _example_facts(example) -> tuple:
    """The facts of the image a tf.Example holds (b"" when it holds none: undecodable)."""
    values = example.features.feature[IMAGE_KEY].bytes_list.value
    return _image_facts(values[0] if values else b"")


def _classify_rows(log) -> tuple:
    facts = [_example_facts(example) for example in log.request.input.example_list.examples]
    probabilities = np.zeros((len(log.response.result.classifications), len(CLASS_NAMES)))
    for row, classification in enumerate(log.response.result.classifications):
        for scored in classification.classes:
            if scored.label in CLASS_NAMES:
                probabilities[row, CLASS_NAMES.index(scored.label)] = scored.score
    if len(probabilities) and not probabilities.any(axis=1).all():
        return [], np.zeros((0, len(CLASS_NAMES)))  # labels of another model: not ours
    return facts, probabilities


def served_images(records: list) -> ServedImages:
    """The images of `records` with what the model answered for each."""
    facts, probabilities, signatures = [], [], {}
    for record in records:
        kind = record.WhichOneof("log_type")
        if kind == "predict_log":
            record_facts, record_probabilities = _predict_rows(record.predict_log)
        elif kind == "classify_log":
            record_facts, record_probabilities = _classify_rows(record.classify_log)
        else:
            continue
        if len(record_facts) != len(record_probabilities):
            continue  # an answer that does not match its request: nothing to pair
        facts += record_facts
        probabilities.append(np.asarray(record_probabilities, dtype=np.float32).reshape(
            -1, len(CLASS_NAMES)))
        signature = record.log_metadata.model_spec.signature_name
        signatures[signature] = signatures.get(signature, 0) + len(record_facts)
    probabilities = (np.concatenate(probabilities) if probabilities
                     else np.zeros((0, len(CLASS_NAMES)), np.float32))
    empty = np.zeros((0, IMAGE_CHANNELS))
    return ServedImages(
        formats=[fact[0] for fact in facts], sizes=[fact[1] for fact in facts],
        channel_means=np.array([fact[2] for fact in facts]) if facts else empty,
        channel_mean_squares=np.array([fact[3] for fact in facts]) if facts else empty,
        predicted=probabilities.argmax(axis=1).astype(np.int64),
        confidence=probabilities.max(axis=1, initial=0.0).astype(np.float32),
        signatures=signatures)
