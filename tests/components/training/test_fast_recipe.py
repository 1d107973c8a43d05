"""The fast profile's recipe (airbench94) through the same Trainer code, export and
checks as ResNet9: trained on the smoke run's Transform output, exported with its six
test-time views inside every signature, run by TF Serving's loader and by its load
check, read back by a warm start, and converted to TFLite."""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tfx.utils import path_utils

import pipeline_config
from components.export import warmup_file
from components.contract import (PIXELS_INPUT, PIXELS_SIGNATURE, PROBABILITIES_OUTPUT,
                                 TEST_SPLIT, TRAINING_METRICS_FILE)
from components.tflite import convert
from components.training.dataset import load_split
from components.training.recipe import build_training_model
from components.training.tta import averaged_logits
from components.training.warm_start import read_weights_from_saved_model
from components.transform.preprocessing import channel_statistics
from serving.load_check import check_version
from tests.components.export.test_saved_model import assert_tf_serving_runs_it_as_tf2_does
from tests.support.trainer_worker import finish_trainer, start_trainer


@pytest.fixture(scope="module")
def fast_export(pipeline_run, tmp_path_factory):
    """TFX's Trainer executor with run_fn on the fast profile's training settings, cut
    to batch 16 and 2.5 epochs of the smoke run's 90 training images (13 steps: the
    whitening bias stops after 5, the lookahead averages at 5 and 10 and the model
    ends on the average)."""
    config, summary = pipeline_run
    transform = summary["components"]["Transform"]["outputs"]
    hparams = pipeline_config.load("fast", (
        "training.batch_size=16", "training.epochs=2.5", "training.lr_knots=0,0.5,2.5",
        "training.whiten_bias_epochs=1", "training.seed=0",
        "training.eval_every_epoch=false")).training
    work = tmp_path_factory.mktemp("fast")
    finish_trainer(start_trainer({
        "transformed_examples": transform["transformed_examples"],
        "transform_graph": transform["transform_graph"],
        "model": str(work / "model"), "model_run": str(work / "model_run"),
        "backup_root": str(work / "backup"), "training": dataclasses.asdict(hparams)},
        str(work / "trainer")))
    with open(work / "model_run" / TRAINING_METRICS_FILE) as metrics_file:
        metrics = json.load(metrics_file)
    export_dir = path_utils.serving_model_dir(str(work / "model"))
    model = build_training_model(hparams)
    read_weights_from_saved_model(model, export_dir)
    tft_output = tft.TFTransformOutput(transform["transform_graph"])
    eval_xf = load_split(glob.glob(os.path.join(
        transform["transformed_examples"], f"Split-{TEST_SPLIT}", "*")), tft_output)[0][:8]
    return {"model": model, "hparams": hparams, "metrics": metrics, "dir": export_dir,
            "eval_xf": eval_xf, "images": warmup_file.pixels_from_transformed(eval_xf, tft_output),
            "transform_graph": transform["transform_graph"]}


def _six_view_probabilities(model, images_xf):
    logits = averaged_logits(lambda view: model(view, training=False),
                             images_xf.astype(np.float32), flip=True, translate=1)
    logits = keras.ops.convert_to_numpy(logits)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def test_it_trains_the_fraction_of_an_epoch_it_is_given(fast_export):
    steps_per_epoch = 90 // 16
    assert fast_export["metrics"]["steps"] == int(np.ceil(2.5 * steps_per_epoch)) == 13
    assert fast_export["metrics"]["parameters"] == fast_export["model"].count_params()


def test_every_signature_serves_the_six_view_average(fast_export):
    images, eval_xf = fast_export["images"], fast_export["eval_xf"]
    expected = _six_view_probabilities(fast_export["model"], eval_xf)
    served = tf.saved_model.load(fast_export["dir"]).signatures[PIXELS_SIGNATURE](
        **{PIXELS_INPUT: tf.constant(images)})[PROBABILITIES_OUTPUT].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-4)
    # Not the flip average alone: the shifted views are in.
    flip_only = keras.ops.convert_to_numpy(keras.ops.softmax(averaged_logits(
        lambda view: fast_export["model"](view, training=False), eval_xf, flip=True)))
    assert np.abs(served - flip_only).max() > 1e-6
    assert_tf_serving_runs_it_as_tf2_does(fast_export["dir"], images)


def test_tf_servings_load_check_passes_it(fast_export):
    result = check_version(fast_export["dir"])
    assert result.warmup_requests > 0 and len(result.signatures_queried) == 3


def test_a_warm_start_reads_its_weights_back(fast_export):
    """The fixture's model is a warm start's read of the export: its whitening kernel
    is the one computed from the data, not the zeros a fresh model starts with."""
    kernel = fast_export["model"].get_layer("whiten").kernel.numpy()
    assert np.abs(kernel).max() > 0.1


def test_tflite_float16_carries_the_six_views(fast_export):
    mean, std = channel_statistics(fast_export["transform_graph"])
    images = fast_export["images"]
    content = convert.convert(fast_export["model"], mean, std, True, convert.FLOAT16,
                              convert.representative_pixels(images), tta_translate=1)
    expected = _six_view_probabilities(fast_export["model"], (images - mean) / std)
    np.testing.assert_allclose(convert.run(content, images), expected, atol=2e-3)
