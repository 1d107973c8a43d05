"""Versions as the Trainer exported them before it used Keras's ExportArchive: the
Keras model an attribute of a `tf.Module` saved with `tf.saved_model.save`. They run
under `tf.saved_model.load` but TF Serving's loader fails every request ("Could not
find variable ..."), which is what `python -m serving check` and the embedded server
must catch, and what `python -m serving reexport` repairs."""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_transform as tft

from components.export import warmup_file
from components.contract import (DEFAULT_SIGNATURE, EXAMPLES_INPUT, EXAMPLES_SIGNATURE,
                                 IMAGE_KEY, IMAGE_SHAPE, IMAGES_INPUT, PIXELS_INPUT,
                                 PIXELS_SIGNATURE)
from components.export.saved_model import ServingFunctions


class _EarlierServingModule(tf.Module):
    def __init__(self, model: keras.Model, tft_output: tft.TFTransformOutput, tta_flip: bool):
        super().__init__()
        self.model = model  # its variables saved as `model/...`, the optimizer too
        self.tft_layer = tft_output.transform_features_layer()
        self._functions = ServingFunctions(
            model, self.tft_layer, {IMAGE_KEY: tft_output.raw_feature_spec()[IMAGE_KEY]},
            tta_flip)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
    def serve_images(self, images):
        return self._functions.serve_images(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples):
        return self._functions.serve_examples(examples)

    @tf.function(input_signature=[tf.TensorSpec((None,) + IMAGE_SHAPE, tf.uint8,
                                                 name=PIXELS_INPUT)])
    def serve_pixels(self, pixels):
        return self._functions.serve_pixels(pixels)


def export_as_before(model: keras.Model, tft_output: tft.TFTransformOutput, export_dir: str,
                     tta_flip: bool, warmup_images) -> None:
    module = _EarlierServingModule(model, tft_output, tta_flip)
    tf.saved_model.save(module, export_dir, signatures={
        DEFAULT_SIGNATURE: module.serve_images, EXAMPLES_SIGNATURE: module.serve_examples,
        PIXELS_SIGNATURE: module.serve_pixels})
    warmup_file.write_warmup_file(export_dir, warmup_images)
