"""`python -m pipeline run` as a user runs it: exit codes, messages, the summary line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from components.contract import SAVED_MODEL_FILE
from components.data import cifar10_format
from tests.support.console import library_lines, tensorflow_cpp_lines
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
    assert library_lines((result.stdout + result.stderr).splitlines()) == []
    assert not output_dir.exists()


def test_missing_path_and_unknown_setting_exit_2(tmp_path):
    missing = str(tmp_path / "nowhere")
    result = _run_cli("--data-dir", missing, "--output-dir", str(tmp_path / "out"))
    assert result.returncode == 2
    assert f"error: {missing}: no such file or directory" in result.stderr

    result = _run_cli("--set", "beam.direct_workers=3")
    assert result.returncode == 2 and "unknown setting 'direct_workers'" in result.stderr

    # A bad value is refused as the config loads: before the data is read or any
    # folder written (it once surfaced only in the Trainer, after Transform).
    output_dir = tmp_path / "out"
    result = _run_cli("--data-dir", missing, "--output-dir", str(output_dir),
                      "--set", "training.xla=maybe")
    assert result.returncode == 2
    assert "error: training.xla: 'maybe' unknown (known: auto, on, off)" in result.stderr
    assert not output_dir.exists()


# The console of a smoke run holds about this many lines besides the alive lines.
CONSOLE_LINES = 60
COMPONENTS = ("Cifar10ExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator",
              "DataGate", "Transform", "Trainer", "LatestBlessedModelResolver", "Evaluator",
              "RegressionGate", "ServingLoadCheck", "Pusher")


@pytest.mark.slow  # a whole pipeline run
def test_beam_dag_runner_runs_the_pipeline_and_prints_the_summary(tmp_path):
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.PYTHON_LAYOUT, train_sizes=(20, 20), test_size=10)

    result = _run_cli("--profile", "smoke", "--data-dir", root, "--output-dir",
                      str(tmp_path / "out"), "--orchestrator", "beam",
                      "--set", "training.batch_size=16", "--progress-every", "1")

    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["orchestrator"] == "beam" and summary["profile"] == "smoke"
    assert {name: c["state"] for name, c in summary["components"].items()} == {
        name: "COMPLETE" for name in COMPONENTS}
    assert os.path.isdir(summary["components"]["Transform"]["outputs"]["transform_graph"])
    # The decision, in words and in the JSON line.
    assert "Evaluation on the test split (10 images): BLESSED" in result.stdout
    assert "TF Serving can run it (ServingLoadCheck): TF Serving's loader ran it" in \
        result.stdout
    version = summary["decision"]["pushed_version"]
    assert f"Pushed version {version} to " in result.stdout
    assert os.path.exists(tmp_path / "out" / "serving_model" / "cifar10" / version /
                          SAVED_MODEL_FILE)
    # The run report, written before the summary line and named in it.
    assert f"Report: {summary['report']}" in result.stdout
    assert os.path.isfile(summary["report"])

    # The console: the run's own lines and no library output.
    console = (result.stdout + result.stderr).splitlines()
    assert library_lines(console) == []
    for name in COMPONENTS:
        assert f"{name}: running" in console
        assert any(line.startswith(f"{name}: COMPLETE in ") for line in console), name
    ends = {line.split(":")[0]: line for line in console if ": COMPLETE in " in line}
    assert ends["Cifar10ExampleGen"].endswith("; examples written: train 40, test 10")
    assert "; eval accuracy " in ends["Trainer"]
    assert ends["Pusher"].endswith(f"; pushed version {version}")
    assert any(re.match(r"(StatisticsGen|Transform|Evaluator): still running, ", line)
               for line in console)
    quiet = [line for line in console if ": still running, " not in line]
    assert len(quiet) <= CONSOLE_LINES, "\n".join(quiet)

    # The log: everything, named as the run's report folder.
    log_path = summary["log"]
    assert f"Log: {log_path}" in result.stdout
    assert os.path.dirname(log_path) == str(tmp_path / "out" / "logs")
    assert os.path.basename(log_path) == \
        os.path.basename(os.path.dirname(summary["report"])) + ".log"
    with open(log_path) as log_file:
        log = log_file.read()
    assert "node Transform is finished." in log
    assert ends["Transform"] in log and "Artifacts of this run:" in log
    assert tensorflow_cpp_lines(log.splitlines())


@pytest.mark.slow  # runs the pipeline until a component fails
def test_a_failing_component_shows_its_error_and_the_log(tmp_path):
    """ExampleGen cannot write its output (a file stands where its folder goes): the
    console names the component and the error, and where the traceback is."""
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.PYTHON_LAYOUT, train_sizes=(20,), test_size=10)
    output_dir = tmp_path / "out"
    blocked = output_dir / "pipeline_root" / "cifar10-resnet9-smoke" / "Cifar10ExampleGen"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")

    result = _run_cli("--profile", "smoke", "--data-dir", root, "--output-dir",
                      str(output_dir))

    assert result.returncode == 1, result.stderr[-3000:]
    console = (result.stdout + result.stderr).splitlines()
    assert library_lines(console) == []
    assert "Cifar10ExampleGen: FAILED after " in result.stdout
    assert "error: pipeline failed in Cifar10ExampleGen: " in result.stderr
    assert f"{blocked} is not a directory" in result.stderr
    log_path = re.search(r"The traceback and the whole output: (\S+)", result.stderr)[1]
    with open(log_path) as log_file:
        log = log_file.read()
    assert "Traceback (most recent call last)" in log and f"{blocked}" in log

    # --verbose: everything on the console, as TFX and TensorFlow write it; no log file.
    shutil.rmtree(output_dir / "logs")
    result = _run_cli("--profile", "smoke", "--data-dir", root, "--output-dir",
                      str(output_dir), "--verbose")
    assert result.returncode == 1
    assert "Component Cifar10ExampleGen is running." in result.stderr
    assert "Traceback (most recent call last)" in result.stderr
    assert not (output_dir / "logs").exists()


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
    assert result.returncode == 2
    assert "training.device: 'tpu' unknown (known: auto, gpu, cpu)" in result.stderr
    assert not output_dir.exists()
