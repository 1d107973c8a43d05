"""Loading as TF Serving does: a version exported the earlier way (a Keras 3 model in a
tf.Module) fails TensorFlow's TF1 loader, and `python -m serving check` names it with
its fix; `reexport` writes it again as the next version, which TF Serving's loader
runs to the same outputs; the embedded server refuses the earlier version as a failed
load and keeps serving the one it has."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components.contract import (DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE, PIXELS_SIGNATURE,
                                 PROBABILITIES_OUTPUT, WARMUP_REQUESTS_FILE)
from components.data.example_gen import encode_png
from components.training.augment import CifarAugment
from components.training.models import build_model
from components.training.warm_start import read_weights_from_saved_model
from serving.load_check import LoadCheckError, check_version
from serving.model_store import AVAILABLE, END, ModelStore
from tests.support.data import REPO_ROOT, png_images
from tests.support.earlier_export import export_as_before
from tests.support.pushing import copy_version
from tests.support.tf1_session import run_signatures


def _training_model():
    return build_model("resnet9", 5e-4, augmentation=CifarAugment(pad=4, flip=True, cutout=8))


@pytest.fixture(scope="module")
def base_path(pipeline_run, pushed_model, tmp_path_factory):
    """Version 1: exported the earlier way; version 2: the smoke run's push."""
    _, summary = pipeline_run
    base = tmp_path_factory.mktemp("base")
    keras.utils.set_random_seed(5)
    export_as_before(_training_model(), tft.TFTransformOutput(
        summary["components"]["Transform"]["outputs"]["transform_graph"]),
        str(base / "1"), tta_flip=True, warmup_images=png_images(3))
    copy_version(pushed_model[2], base, 2)
    return base


def _serving(*args):
    return subprocess.run([sys.executable, "-m", "serving", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def _requests():
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    return {DEFAULT_SIGNATURE: {"images": np.array([encode_png(i) for i in images], object)},
            PIXELS_SIGNATURE: {"pixels": images}}


def test_the_earlier_export_fails_tf_servings_loader_and_the_check_names_it(base_path):
    with pytest.raises(tf.errors.FailedPreconditionError, match="Could not find variable"):
        run_signatures(str(base_path / "1"), _requests())
    with pytest.raises(LoadCheckError, match=r"variables are not restored by TF Serving's "
                                             r"loader \(.*\); TF Serving fails every request"):
        check_version(str(base_path / "1"))
    passed = check_version(str(base_path / "2"))
    assert passed.signatures_queried == [DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE,
                                         PIXELS_SIGNATURE]
    assert passed.warmup_requests == 3 and passed.variables > 0

    result = _serving("check", "--model-base-path", str(base_path))
    assert result.returncode == 1, result.stderr
    assert "version 1: TF Serving cannot run it" in result.stdout
    assert (f"fix: python -m serving reexport --model-base-path {base_path} --version 1"
            in result.stdout)
    assert "version 2: OK" in result.stdout
    lines = [json.loads(line) for line in _serving(
        "check", "--model-dir", str(base_path / "2"), "--json").stdout.splitlines()]
    assert [line["ok"] for line in lines] == [True]

    assert _serving("check", "--model-base-path", str(base_path / "nowhere")).returncode == 2


def test_reexport_writes_the_next_version_that_tf_serving_runs_to_the_same_outputs(
        base_path, tmp_path):
    base = tmp_path / "base"
    for version in (1, 2):
        copy_version(str(base_path / str(version)), base, version)
    earlier_files = sorted(os.listdir(base / "1"))

    result = _serving("reexport", "--model-base-path", str(base), "--version", "1")
    assert result.returncode == 0, result.stderr
    assert "re-exported as version 3" in result.stdout
    assert sorted(os.listdir(base)) == ["1", "2", "3"]  # nothing left half-written
    assert sorted(os.listdir(base / "1")) == earlier_files

    requests = _requests()
    by_session = run_signatures(str(base / "3"), requests)
    earlier = tf.saved_model.load(str(base / "1")).signatures
    for name, inputs in requests.items():
        expected = earlier[name](**{k: tf.constant(v) for k, v in inputs.items()})
        np.testing.assert_allclose(by_session[name][PROBABILITIES_OUTPUT],
                                   expected[PROBABILITIES_OUTPUT].numpy(), atol=1e-6)
    with open(base / "1" / WARMUP_REQUESTS_FILE, "rb") as old, \
            open(base / "3" / WARMUP_REQUESTS_FILE, "rb") as new:
        assert old.read() == new.read()
    # The re-export still warm-starts, with the earlier version's weights.
    np.testing.assert_array_equal(
        np.concatenate([w.ravel() for w in read_weights_from_saved_model(
            _training_model(), str(base / "3"))]),
        np.concatenate([w.ravel() for w in read_weights_from_saved_model(
            _training_model(), str(base / "1"))]))

    assert _serving("reexport", "--model-base-path", str(base),
                    "--version", "7").returncode == 2


def test_the_embedded_server_refuses_a_version_tf_serving_cannot_run(base_path, tmp_path):
    copy_version(str(base_path / "2"), tmp_path, 3)
    messages = []
    store = ModelStore("cifar10", str(tmp_path), log=messages.append)
    store.poll_once()
    copy_version(str(base_path / "1"), tmp_path, 4)
    store.poll_once()
    assert store.get("cifar10").version == 3
    statuses = {status.version: status for status in store.statuses("cifar10")}
    assert statuses[3].state == AVAILABLE and statuses[4].state == END
    assert "not restored by TF Serving's loader" in statuses[4].error_message
    assert store.load_failures() == {4: 1}
    assert any("Version 4 of cifar10 failed to load" in message for message in messages)
