"""`python -m pipeline run` as a user runs it: exit codes, messages, the summary line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from components.contract import SAVED_MODEL_FILE
from components.data import cifar10_format
from tests.support.data import REPO_ROOT, write_small_dataset


def _run_cli(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", "run", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _truncate_bin(root):
    path = os.path.join(root, "cifar-10-batches-bin", "data_batch_1.bin")
    with open(path, "ab") as batch_file:
        batch_file.write(b"\x07" * 100)
    return path, "truncated record"


def _label_ten(root):
    path = os.path.join(root, "cifar-10-batches-bin", "test_batch.bin")
    images = np.zeros((3, 32, 32, 3), np.uint8)
    cifar10_format.write_batch(path, images, [1, 10, 2])
    return path, "record 1 has label 10"


def _wrong_image_size(root):
    import pickle
    layout_dir = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(layout_dir)
    for name in ("data_batch_1", "test_batch"):
        with open(os.path.join(layout_dir, name), "wb") as batch_file:
            pickle.dump({b"data": np.zeros((4, 64 * 64 * 3), np.uint8), b"labels": [1] * 4},
                        batch_file, protocol=2)
    return os.path.join(layout_dir, "data_batch_1"), "wrong image size: 12288 values"


def _wrong_layout(root):
    os.makedirs(os.path.join(root, "images"))
    return root, "wrong layout"


@pytest.mark.parametrize("break_data", [_truncate_bin, _label_ten, _wrong_image_size,
                                        _wrong_layout])
def test_bad_input_exits_2_naming_the_file_and_writes_nothing(tmp_path, break_data):
    root = str(tmp_path / "data")
    if break_data is _truncate_bin or break_data is _label_ten:
        write_small_dataset(root, cifar10_format.BINARY_LAYOUT)
    else:
        os.makedirs(root)
    bad_path, problem = break_data(root)
    output_dir = tmp_path / "out"

    result = _run_cli("--profile", "smoke", "--data-dir", root, "--output-dir", str(output_dir))

    assert result.returncode == 2, result.stderr
    assert f"error: {bad_path}" in result.stderr and problem in result.stderr
    assert not output_dir.exists()


def test_missing_path_and_unknown_setting_exit_2(tmp_path):
    missing = str(tmp_path / "nowhere")
    result = _run_cli("--data-dir", missing, "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"error: {missing}: no such file or directory" in result.stderr

    result = _run_cli("--set", "beam.direct_workers=3")
    assert result.returncode == 2 and "unknown setting 'direct_workers'" in result.stderr


@pytest.mark.slow  # a whole pipeline run
def test_beam_dag_runner_runs_the_pipeline_and_prints_the_summary(tmp_path):
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.PYTHON_LAYOUT, train_sizes=(20, 20), test_size=10)

    result = _run_cli("--profile", "smoke", "--data-dir", root, "--output-dir",
                      str(tmp_path / "out"), "--orchestrator", "beam",
                      "--set", "training.batch_size=16")

    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["orchestrator"] == "beam" and summary["profile"] == "smoke"
    assert {name: c["state"] for name, c in summary["components"].items()} == {
        name: "COMPLETE" for name in ("Cifar10ExampleGen", "ImportSchemaGen", "StatisticsGen",
                                      "ExampleValidator", "DataGate", "Transform", "Trainer",
                                      "LatestBlessedModelResolver", "Evaluator",
                                      "RegressionGate", "ServingLoadCheck", "Pusher")}
    assert os.path.isdir(summary["components"]["Transform"]["outputs"]["transform_graph"])
    assert "Artifacts of this run:" in result.stdout
    # The decision, in words and in the JSON line.
    assert "Evaluation on the test split (10 images): BLESSED" in result.stdout
    assert "TF Serving can run it (ServingLoadCheck): TF Serving's loader ran it" in \
        result.stdout
    version = summary["decision"]["pushed_version"]
    assert f"Pushed version {version} to " in result.stdout
    assert os.path.exists(tmp_path / "out" / "serving_model" / "cifar10" / version /
                          SAVED_MODEL_FILE)
    assert "node Transform is finished." in result.stderr
    # The run report, written before the summary line and named in it.
    assert f"Report: {summary['report']}" in result.stdout
    assert os.path.isfile(summary["report"])


def test_a_gpu_tensorflow_cannot_use_stops_the_run_before_any_component(tmp_path):
    """training.device=gpu where TensorFlow sees none takes the same path as a machine
    whose NVIDIA GPU TensorFlow cannot use: exit 2 with the fix, nothing written."""
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("TensorFlow sees a GPU here: the run would start")
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.BINARY_LAYOUT)
    output_dir = tmp_path / "out"
    result = _run_cli("--profile", "smoke", "--data-dir", root, "--output-dir",
                      str(output_dir), "--set", "training.device=gpu")
    assert result.returncode == 2, result.stderr
    assert "error: training.device=gpu, but TensorFlow sees no GPU" in result.stderr
    assert "make setup GPU=1" in result.stderr and "training.device=cpu" in result.stderr
    assert not output_dir.exists()

    result = _run_cli("--profile", "smoke", "--data-dir", root, "--output-dir",
                      str(output_dir), "--set", "training.device=tpu")
    assert result.returncode == 2 and "'tpu' is not one of auto, gpu, cpu" in result.stderr
    assert not output_dir.exists()
