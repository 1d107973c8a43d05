"""The exported SavedModel: the Transform graph and the model in one, raw images in.

Signatures (names in `components.contract`; each returns `class_ids` int64 [N],
`class_names` string [N] and `probabilities` float32 [N, 10]):
- `serving_default`: `images`, string [N]: encoded PNG or JPEG (BMP too), 32x32.
- `serving_examples`: `examples`, string [N]: serialized tf.Examples with the training
  data's `image` feature (what TFMA and InfraValidator call).
- `serving_pixels`: `pixels`, uint8 [N, 32, 32, 3]: HWC RGB pixel arrays.

Every signature sends the image through the Transform graph's own decode and
Z-score, so no client or server re-implements the normalisation. Before any decoding,
each image's header must declare a known format and 32x32 pixels
(`components.image_header`), so a wrong-sized image costs its header, not its pixels.
With `tta_flip` the logits of each image and its mirror image are averaged.

The export also holds TF Serving's warmup file (`components.warmup`), so every pushed
version carries the requests a server replays before it serves the version.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf
import tensorflow_transform as tft

from components import image_header, warmup
from components.contract import (CLASS_IDS_OUTPUT, CLASS_NAMES, CLASS_NAMES_OUTPUT,
                                 DEFAULT_SIGNATURE, EXAMPLES_INPUT, EXAMPLES_SIGNATURE,
                                 IMAGE_KEY, IMAGE_SHAPE, IMAGE_XF_KEY, IMAGES_INPUT,
                                 PIXELS_INPUT, PIXELS_SIGNATURE, PROBABILITIES_OUTPUT)


class CifarServingModule(tf.Module):

    def __init__(self, model: keras.Model, tft_output: tft.TFTransformOutput, tta_flip: bool):
        super().__init__()
        # Saved as the checkpoint's `model/...` variables, which a warm start reads.
        self.model = model
        self.tft_layer = tft_output.transform_features_layer()
        self.tta_flip = tta_flip
        self._image_feature_spec = {IMAGE_KEY: tft_output.raw_feature_spec()[IMAGE_KEY]}
        self._class_names = tf.constant(CLASS_NAMES)

    def _predict_normalised(self, images_xf: tf.Tensor) -> dict:
        logits = self.model(images_xf, training=False)
        if self.tta_flip:
            logits = (logits + self.model(tf.reverse(images_xf, axis=[2]), training=False)) / 2
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
        class_ids = tf.argmax(probabilities, axis=-1)
        return {CLASS_IDS_OUTPUT: class_ids,
                CLASS_NAMES_OUTPUT: tf.gather(self._class_names, class_ids),
                PROBABILITIES_OUTPUT: probabilities}

    def _predict_encoded(self, encoded_images: tf.Tensor) -> dict:
        encoded_images = image_header.checked(tf.reshape(encoded_images, [-1]))
        transformed = self.tft_layer({IMAGE_KEY: tf.reshape(encoded_images, [-1, 1])})
        return self._predict_normalised(transformed[IMAGE_XF_KEY])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)])
    def serve_images(self, images):
        return self._predict_encoded(images)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(self, examples):
        features = tf.io.parse_example(examples, self._image_feature_spec)
        return self._predict_encoded(features[IMAGE_KEY])

    @tf.function(input_signature=[tf.TensorSpec((None,) + IMAGE_SHAPE, tf.uint8,
                                                 name=PIXELS_INPUT)])
    def serve_pixels(self, pixels):
        # Encoding to PNG keeps one input path: the Transform graph's decode.
        encoded = tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.string)
        return self._predict_encoded(encoded)


def export_serving_model(model: keras.Model, tft_output: tft.TFTransformOutput,
                         export_dir: str, tta_flip: bool,
                         warmup_images: Sequence[bytes]) -> None:
    """Saves the SavedModel to `export_dir`, with a warmup file of `warmup_images`
    (encoded PNGs)."""
    module = CifarServingModule(model, tft_output, tta_flip)
    tf.saved_model.save(module, export_dir, signatures={
        DEFAULT_SIGNATURE: module.serve_images,
        EXAMPLES_SIGNATURE: module.serve_examples,
        PIXELS_SIGNATURE: module.serve_pixels,
    })
    warmup.write_warmup_file(export_dir, warmup_images)
