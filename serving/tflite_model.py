"""A pushed TensorFlow Lite model run on image files in TFLite's interpreter (XNNPACK),
as an app on a device would run it: `python -m serving predict --tflite PATH IMAGE...`.

The files are decoded as the exported graph decodes them (`tf.io.decode_image`, three
channels, a GIF refused) and a size other than 32x32 is refused, as the graph refuses
it: the converted model takes uint8 pixels and holds the rest (the Z-score, the model,
its test-time augmentation). The class names are the `labels.txt` beside the model, as
a device app reads them, or the contract's when there is none.
"""

from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np

from components.contract import (CLASS_NAMES, IMAGE_CHANNELS, IMAGE_HEIGHT, IMAGE_WIDTH,
                                 TFLITE_INPUT, TFLITE_LABELS_FILE, TFLITE_OUTPUT,
                                 TFLITE_SIGNATURE)
from serving.client import Prediction, predictions_of

_GIF_MAGIC = b"GIF8"


class TFLiteInputError(ValueError):
    """An image file or model the TFLite model cannot take, named."""


def decode(name: str, encoded: bytes) -> np.ndarray:
    """uint8 [32, 32, 3] pixels of one encoded image, or TFLiteInputError naming it."""
    import tensorflow as tf

    if encoded.startswith(_GIF_MAGIC):
        raise TFLiteInputError(f"{name}: GIF is not accepted: send PNG, JPEG or BMP")
    try:
        pixels = tf.io.decode_image(encoded, channels=IMAGE_CHANNELS,
                                    expand_animations=False).numpy()
    except tf.errors.InvalidArgumentError as error:
        raise TFLiteInputError(f"{name}: not a PNG, JPEG or BMP image "
                               f"({error.message.splitlines()[0]})") from None
    if pixels.shape[:2] != (IMAGE_HEIGHT, IMAGE_WIDTH):
        raise TFLiteInputError(f"{name}: {pixels.shape[1]}x{pixels.shape[0]} pixels; the "
                               f"model takes {IMAGE_WIDTH}x{IMAGE_HEIGHT} images and does "
                               f"not resize")
    return pixels


def class_names(model_path: str) -> List[str]:
    labels_path = os.path.join(os.path.dirname(model_path), TFLITE_LABELS_FILE)
    if not os.path.isfile(labels_path):
        return list(CLASS_NAMES)
    with open(labels_path) as labels_file:
        return [line.strip() for line in labels_file if line.strip()]


def predict(model_path: str, images: Sequence[np.ndarray], num_threads: int = 2
            ) -> List[Prediction]:
    """The model's answer for each uint8 image, in the interpreter."""
    import tensorflow as tf

    try:
        interpreter = tf.lite.Interpreter(model_path=model_path, num_threads=num_threads)
        runner = interpreter.get_signature_runner(TFLITE_SIGNATURE)
    except (ValueError, RuntimeError) as error:
        raise TFLiteInputError(f"{model_path}: not a TFLite model this pipeline exported "
                               f"({error})") from None
    probabilities = runner(**{TFLITE_INPUT: np.stack(images).astype(np.uint8)})[TFLITE_OUTPUT]
    names = class_names(model_path)
    class_ids = probabilities.argmax(axis=1)
    return predictions_of(class_ids, [names[class_id] for class_id in class_ids],
                          probabilities)
