"""A trained Keras model as TensorFlow Lite: float16 weights, or full-integer int8.

The converted model takes uint8 pixels [N, 32, 32, 3] and returns the class
probabilities, computing what the SavedModel's `serving_pixels` signature serves: the
Transform's per-channel Z-score, folded in as two constants read back from the
transform graph (`components.transform.preprocessing.channel_statistics`, never
re-typed), the model, and its test-time augmentation (`components.training.tta`).
Decoding PNG/JPEG stays outside: TFLite has no builtin image decoder, and on a device
the app's platform decodes.

The route that converts (TF 2.16): the function is written as a SavedModel by Keras's
ExportArchive, which holds the model's real variables, and converted with
`from_saved_model(signature_keys=[...])`. Converting a Keras model kept as a
`tf.Module` attribute aborts the process in MLIR (tensorflow#69237).

float16 takes uint8 and casts inside. int8 takes float32 pixels in the function and
is converted with `inference_input_type=tf.uint8`: the input gets scale 1.0 and zero
point 0, so it takes the raw pixel values, and nothing but integer kernels run (a cast
inside would leave CAST/SUB/MUL in float). That scale holds only when the
representative images cover 0 and 255, so an all-0 and an all-255 image are added.
"""

from __future__ import annotations

import os
import tempfile
from typing import Iterable

import keras
import numpy as np
import tensorflow as tf

from components.contract import IMAGE_SHAPE, TFLITE_INPUT, TFLITE_OUTPUT, TFLITE_SIGNATURE
from components.training.tta import averaged_logits

FLOAT16, INT8 = "float16", "int8"


def _pixel_function(model: keras.Model, channel_mean: np.ndarray, channel_std: np.ndarray,
                    tta_flip: bool, tta_translate: int):
    mean = tf.constant(channel_mean, tf.float32)
    std = tf.constant(channel_std, tf.float32)

    def probabilities(pixels):
        images = (tf.cast(pixels, tf.float32) - mean) / std
        logits = averaged_logits(lambda view: model(view, training=False), images,
                                 tta_flip, tta_translate)
        return {TFLITE_OUTPUT: tf.nn.softmax(tf.cast(logits, tf.float32))}

    return probabilities


def _write_archive(model: keras.Model, function, input_dtype, export_dir: str) -> None:
    archive = keras.export.ExportArchive()
    archive.add_variable_collection("variables", [variable.value
                                                  for variable in model.variables])
    archive.add_endpoint(TFLITE_SIGNATURE, function, input_signature=[
        tf.TensorSpec((None,) + IMAGE_SHAPE, input_dtype, name=TFLITE_INPUT)])
    archive.write_out(export_dir, verbose=False)


def representative_pixels(pixels: np.ndarray) -> np.ndarray:
    """`pixels` (uint8 [N, 32, 32, 3]) with an all-0 and an all-255 image added, so
    that int8's input range is exactly 0..255."""
    extremes = np.stack([np.zeros(IMAGE_SHAPE, np.uint8), np.full(IMAGE_SHAPE, 255, np.uint8)])
    return np.concatenate([extremes, pixels.astype(np.uint8)])


def convert(model: keras.Model, channel_mean: np.ndarray, channel_std: np.ndarray,
            tta_flip: bool, variant: str, calibration_pixels: np.ndarray,
            tta_translate: int = 0) -> bytes:
    """The TFLite flatbuffer of one variant. `calibration_pixels` (uint8 [N, 32, 32, 3],
    from the train split) calibrates int8's ranges; float16 does not use them."""
    if variant not in (FLOAT16, INT8):
        raise ValueError(f"TFLite variant {variant!r}: unknown (known: {FLOAT16}, {INT8})")
    function = _pixel_function(model, channel_mean, channel_std, tta_flip, tta_translate)
    with tempfile.TemporaryDirectory(prefix="tflite-") as work_dir:
        export_dir = os.path.join(work_dir, "saved_model")
        _write_archive(model, function, tf.uint8 if variant == FLOAT16 else tf.float32,
                       export_dir)
        converter = tf.lite.TFLiteConverter.from_saved_model(
            export_dir, signature_keys=[TFLITE_SIGNATURE])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == FLOAT16:
            converter.target_spec.supported_types = [tf.float16]
        else:
            samples = representative_pixels(calibration_pixels).astype(np.float32)

            def representative_dataset() -> Iterable[dict]:
                for sample in samples:
                    yield {TFLITE_INPUT: sample[None]}

            converter.representative_dataset = representative_dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
        return converter.convert()


def run(model_content: bytes, pixels: np.ndarray, num_threads: int = 2,
        batch_size: int = 256) -> np.ndarray:
    """Probabilities (float32 [N, classes]) of a converted model on uint8 pixels, in
    TFLite's interpreter (XNNPACK), batch by batch."""
    runner = tf.lite.Interpreter(model_content=model_content, num_threads=num_threads
                                 ).get_signature_runner(TFLITE_SIGNATURE)
    outputs = [runner(**{TFLITE_INPUT: pixels[start:start + batch_size]})[TFLITE_OUTPUT]
               for start in range(0, len(pixels), batch_size)]
    return np.concatenate(outputs).astype(np.float32)
