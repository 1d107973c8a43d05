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
(`components.export.image_header`), so a wrong-sized image costs its header, not its pixels.
The model's test-time augmentation (`components.training.tta`: the mirror image, and
airbench's shifted views) is inside, so every signature scores as the Evaluator does.

The export also holds TF Serving's warmup file (`components.export.warmup_file`), so every pushed
version carries the requests a server replays before it serves the version.


The export is Keras 3's own `keras.export.ExportArchive`: it saves the tf.Variables the
signatures capture, so TensorFlow's TF1 loader (TF Serving, InfraValidator,
BulkInferrer, `saved_model_cli run`) restores every variable the graph reads. A Keras 3
model saved as an attribute of a `tf.Module` runs under `tf.saved_model.load` but not
there: its variables reach the graph under handles the saver never restores
(tensorflow/serving#2226, keras-team/keras#20095). The archive also holds the model's
variables as one collection in `model.variables` order (`MODEL_VARIABLES_KEY`), which a
warm start reads back, and tracks the Transform layer, so its resources travel along.
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf
import tensorflow_transform as tft

from components.export import image_header, warmup_file
from components.contract import (CLASS_IDS_OUTPUT, CLASS_NAMES, CLASS_NAMES_OUTPUT,
                                 DEFAULT_SIGNATURE, EXAMPLES_INPUT, EXAMPLES_SIGNATURE,
                                 IMAGE_KEY, IMAGE_SHAPE, IMAGE_XF_KEY, IMAGES_INPUT,
                                 MODEL_VARIABLES_KEY, PIXELS_INPUT, PIXELS_SIGNATURE,
                                 PROBABILITIES_OUTPUT)
from components.training.tta import averaged_logits


class ServingFunctions:
    """The three signatures' bodies over one model and one Transform layer."""

    def __init__(self, model: keras.Model, tft_layer, image_feature_spec: dict,
                 tta_flip: bool, tta_translate: int = 0):
        self.model = model
        self.tft_layer = tft_layer
        self.tta_flip, self.tta_translate = tta_flip, tta_translate
        self._image_feature_spec = image_feature_spec

    def _predict_normalised(self, images_xf: tf.Tensor) -> dict:
        logits = averaged_logits(lambda view: self.model(view, training=False), images_xf,
                                 self.tta_flip, self.tta_translate)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))
        class_ids = tf.argmax(probabilities, axis=-1)
        return {CLASS_IDS_OUTPUT: class_ids,
                CLASS_NAMES_OUTPUT: tf.gather(tf.constant(CLASS_NAMES), class_ids),
                PROBABILITIES_OUTPUT: probabilities}

    def _predict_encoded(self, encoded_images: tf.Tensor) -> dict:
        encoded_images = image_header.checked(tf.reshape(encoded_images, [-1]))
        transformed = self.tft_layer({IMAGE_KEY: tf.reshape(encoded_images, [-1, 1])})
        return self._predict_normalised(transformed[IMAGE_XF_KEY])

    def serve_images(self, images):
        return self._predict_encoded(images)

    def serve_examples(self, examples):
        features = tf.io.parse_example(examples, self._image_feature_spec)
        return self._predict_encoded(features[IMAGE_KEY])

    def serve_pixels(self, pixels):
        # Encoding to PNG keeps one input path: the Transform graph's decode.
        encoded = tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.string)
        return self._predict_encoded(encoded)


def export_serving_model(model: keras.Model, tft_output: tft.TFTransformOutput,
                         export_dir: str, tta_flip: bool,
                         warmup_images: Sequence[bytes], tta_translate: int = 0) -> None:
    """Saves the SavedModel to `export_dir`, with a warmup file of `warmup_images`
    (encoded PNGs)."""
    tft_layer = tft_output.transform_features_layer()
    functions = ServingFunctions(model, tft_layer,
                                  {IMAGE_KEY: tft_output.raw_feature_spec()[IMAGE_KEY]},
                                  tta_flip, tta_translate)
    archive = keras.export.ExportArchive()
    archive.track(tft_layer)
    # The model's variables as the tf.Variables its Keras variables hold: the same
    # objects the endpoints capture, so the checkpoint keeps each once (tracking the
    # model itself would save a second copy of every weight), listed in
    # `model.variables` order for a warm start.
    archive.add_variable_collection(MODEL_VARIABLES_KEY,
                                    [variable.value for variable in model.variables])
    endpoints = {
        DEFAULT_SIGNATURE: (functions.serve_images,
                            tf.TensorSpec([None], tf.string, name=IMAGES_INPUT)),
        EXAMPLES_SIGNATURE: (functions.serve_examples,
                             tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)),
        PIXELS_SIGNATURE: (functions.serve_pixels,
                           tf.TensorSpec((None,) + IMAGE_SHAPE, tf.uint8, name=PIXELS_INPUT)),
    }
    for name, (function, input_spec) in endpoints.items():
        archive.add_endpoint(name, function, input_signature=[input_spec])
    archive.write_out(export_dir, verbose=False)
    warmup_file.write_warmup_file(export_dir, warmup_images)
