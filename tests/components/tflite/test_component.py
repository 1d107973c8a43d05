"""The smoke run's TFLiteExport and TFLitePusher: both variants converted and checked on
the test split beside the SavedModel (figures recomputed here in the interpreter), the
passing ones pushed with the SavedModel's version, nothing else."""

from __future__ import annotations

import os

import numpy as np
from tfx.types import standard_artifacts

from components.contract import (CLASS_NAMES, TFLITE_CHECK_FILE, TFLITE_LABELS_FILE,
                                 TFLITE_VARIANTS, tflite_base_path, tflite_file)
from components.evaluation.regression_gate import predict, read_test_split
from components.tflite import convert
from components.tflite.component import decode_images


def _artifact(artifact_type, uri: str):
    artifact = artifact_type()
    artifact.uri = uri
    return artifact


def test_both_variants_are_checked_beside_the_saved_model_and_the_passing_pushed(
        pipeline_run, pushed_model):
    config, summary = pipeline_run
    base_path, version, _ = pushed_model
    tflite = summary["decision"]["tflite"]
    assert sorted(tflite["variants"]) == sorted(TFLITE_VARIANTS)
    models_uri = summary["components"]["TFLiteExport"]["outputs"]["tflite_models"]
    assert os.path.isfile(os.path.join(models_uri, TFLITE_CHECK_FILE))

    serialized, labels, _ = read_test_split(
        _artifact(standard_artifacts.Examples,
                  summary["components"]["Cifar10ExampleGen"]["outputs"]["examples"]))
    trained = _artifact(standard_artifacts.Model,
                        summary["components"]["Trainer"]["outputs"]["model"])
    saved_model_predicted = predict(trained, serialized).argmax(axis=1)
    assert tflite["saved_model"]["accuracy"] == np.mean(saved_model_predicted == labels)
    pixels = decode_images(serialized)
    pushed_dir = os.path.join(tflite_base_path(base_path), str(version))
    for variant, outcome in tflite["variants"].items():
        with open(os.path.join(models_uri, tflite_file(variant)), "rb") as model_file:
            content = model_file.read()
        assert outcome["size_bytes"] == len(content)
        predicted = convert.run(content, pixels).argmax(axis=1)
        assert outcome["accuracy"] == np.mean(predicted == labels)
        assert outcome["agreement"] == np.mean(predicted == saved_model_predicted)
        assert outcome["passed"] == (outcome["drop"] <= tflite["max_drop"] + 1e-12)
        # Pushed exactly when it passed, byte for byte.
        assert outcome["pushed"] == outcome["passed"]
        pushed_file = os.path.join(pushed_dir, tflite_file(variant))
        if outcome["passed"]:
            with open(pushed_file, "rb") as pushed:
                assert pushed.read() == content
        else:
            assert not os.path.exists(pushed_file) and outcome["reason"]
    # float16 keeps the float model's answers on these images.
    assert tflite["variants"]["float16"]["agreement"] >= 0.9
    assert (tflite["variants"]["int8"]["size_bytes"]
            < 0.6 * tflite["variants"]["float16"]["size_bytes"])
    if any(outcome["passed"] for outcome in tflite["variants"].values()):
        with open(os.path.join(pushed_dir, TFLITE_LABELS_FILE)) as labels_file:
            assert labels_file.read().splitlines() == list(CLASS_NAMES)
        assert tflite["pushed_destination"] == pushed_dir
