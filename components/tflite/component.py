"""TFLiteExport: every trained model converted to TensorFlow Lite and checked on the test
split beside the SavedModel, for the TFLitePusher to push with a blessed version.

A component of its own after the Trainer, not a step of the Trainer's export: its
inputs are the Trainer's (the model, the Transform graph and output) plus the raw test
split the Evaluator reads, its failure must never cost the trained SavedModel, and its
conversions run on a CPU after a GPU Trainer has released its device.

The check is this component's own, not the Evaluator's. TFMA's `tf_lite` model type
feeds parsed tf.Example features to the TFLite inputs by name, never decodes PNG,
silently fills a missing numeric feature with -1, and cannot share an Evaluator with
the SavedModel. Here each variant runs in the interpreter on the test split's pixels,
the SavedModel (its `serving_examples` signature, as the RegressionGate runs it) on
the same images, and both accuracies, the agreement and the drop go into
TFLITE_CHECK_FILE. A variant that fails to convert, or loses more than `max_drop`, is
recorded as not passed with the reason; the component itself does not fail, so the
SavedModel's push never waits on it.
"""

import json
import os
import time

import numpy as np
from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact, standard_artifacts
from tfx.utils import io_utils, path_utils

from components.contract import (IMAGE_KEY, IMAGE_SHAPE, IMAGE_XF_KEY, TFLITE_CHECK_FILE,
                                 TRAIN_SPLIT, tflite_file)
from components.data.split_files import split_records
from components.evaluation.regression_gate import predict, read_test_split


class TFLiteModels(artifact.Artifact):
    """The converted variants (`model_<variant>.tflite`) and TFLITE_CHECK_FILE."""

    # <namespace>.<Name>: the form Kubeflow V2 requires of a custom artifact type.
    TYPE_NAME = "cifar10.TFLiteModels"


def _calibration_pixels(transformed_examples_uri: str, count: int, channel_mean, channel_std
                        ) -> np.ndarray:
    """The first `count` train-split images of the Transform output, taken back to
    uint8 pixels with the transform graph's own constants."""
    import tensorflow as tf

    spec = {IMAGE_XF_KEY: tf.io.FixedLenFeature(IMAGE_SHAPE, tf.float32)}
    records = split_records(transformed_examples_uri, TRAIN_SPLIT).take(count).batch(count)
    transformed = next(iter(records.map(lambda batch: tf.io.parse_example(batch, spec))))
    pixels = transformed[IMAGE_XF_KEY].numpy() * channel_std + channel_mean
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def decode_images(serialized: list) -> np.ndarray:
    """uint8 pixels [N, 32, 32, 3] of serialized tf.Examples' images, decoded by the
    Transform's own decode."""
    import tensorflow as tf

    from components.transform import preprocessing

    images = tf.io.parse_example(serialized, {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
    return preprocessing.decode_images(images[IMAGE_KEY]).numpy().astype(np.uint8)


def judge(variant_predicted: np.ndarray, saved_model_predicted: np.ndarray,
          labels: np.ndarray, max_drop: float) -> dict:
    """A variant's accuracy, its drop against the SavedModel on the same images, their
    agreement, and whether it passes."""
    accuracy = float(np.mean(variant_predicted == labels))
    saved_model_accuracy = float(np.mean(saved_model_predicted == labels))
    drop = saved_model_accuracy - accuracy
    passed = drop <= max_drop + 1e-12
    return {"accuracy": accuracy, "drop": drop,
            "agreement": float(np.mean(variant_predicted == saved_model_predicted)),
            "passed": passed,
            "reason": "" if passed else (f"accuracy {accuracy:.2%} is {100 * drop:.2f} "
                                         f"points below the SavedModel's "
                                         f"{saved_model_accuracy:.2%} on the same "
                                         f"{len(labels)} test images (limit "
                                         f"{100 * max_drop:.2f} points)")}


@component
def TFLiteExport(  # noqa: N802 (a TFX component is named like a class)
    model: InputArtifact[standard_artifacts.Model],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    transformed_examples: InputArtifact[standard_artifacts.Examples],
    examples: InputArtifact[standard_artifacts.Examples],
    tflite_models: OutputArtifact[TFLiteModels],
    training: Parameter[str],
    variants: Parameter[str],
    max_drop: Parameter[float],
    representative_images: Parameter[int],
):
    """Converts `model` to each of `variants` (comma-separated), checks each on the
    test split of `examples` against the SavedModel and writes both to `tflite_models`.
    `training` is the Trainer's TrainingConfig as JSON (it rebuilds the Keras model
    the SavedModel's weights are read into)."""
    from components.tflite import convert
    from components.training.config import training_config_from_dict
    from components.training.recipe import build_training_model
    from components.training.warm_start import read_weights_from_saved_model
    from components.transform.preprocessing import channel_statistics

    hparams = training_config_from_dict(json.loads(training))
    saved_model_dir = path_utils.serving_model_path(model.uri)
    keras_model = build_training_model(hparams)
    read_weights_from_saved_model(keras_model, saved_model_dir)
    channel_mean, channel_std = channel_statistics(transform_graph.uri)
    calibration = _calibration_pixels(transformed_examples.uri, representative_images,
                                      channel_mean, channel_std)
    serialized, labels, _ = read_test_split(examples)
    saved_model_predicted = predict(model, serialized).argmax(axis=1)
    test_pixels = decode_images(serialized)
    result = {"saved_model": {"accuracy": float(np.mean(saved_model_predicted == labels)),
                              "test_images": int(len(labels))},
              "max_drop": max_drop, "variants": {}}
    for variant in [name for name in variants.split(",") if name]:
        started = time.monotonic()
        try:
            content = convert.convert(keras_model, channel_mean, channel_std,
                                      hparams.tta_flip, variant, calibration,
                                      tta_translate=hparams.tta_translate)
            predicted = convert.run(content, test_pixels).argmax(axis=1)
        except Exception as error:  # noqa: BLE001 (recorded: it must not fail the run)
            logging.exception("TFLite %s conversion failed", variant)
            result["variants"][variant] = {"passed": False, "reason": (
                f"conversion failed: {type(error).__name__}: {error}")}
            continue
        io_utils.write_bytes_file(os.path.join(tflite_models.uri, tflite_file(variant)),
                                  content)
        result["variants"][variant] = {
            **judge(predicted, saved_model_predicted, labels, max_drop),
            "file": tflite_file(variant), "size_bytes": len(content),
            "seconds": round(time.monotonic() - started, 1)}
        logging.info("TFLite %s: %s", variant, result["variants"][variant])
    io_utils.write_string_file(os.path.join(tflite_models.uri, TFLITE_CHECK_FILE),
                               json.dumps(result, indent=2))
