"""Scheduled retraining on span data, run after run on one output directory:

1. span-0 only: a model is trained, blessed and pushed (version A);
2. span-1 arrives; the run is killed with SIGKILL while the Trainer trains: nothing is
   pushed and version A is untouched;
3. the next run reuses what the killed run finished (span-1's ingestion, Transform),
   trains on both spans warm-started from version A, compares with A and pushes B;
4. no new span: nothing is retrained or pushed;
5. a span with a corrupt file: the run fails naming it; the served versions stay.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import pipeline_config
from components.data import cifar10_format
from components.data.cifar10_format import Cifar10DataError
from components.push.executor import model_digest
from pipeline import local_runner
from tests.support.data import REPO_ROOT, write_small_dataset

pytestmark = pytest.mark.slow  # five pipeline runs, one killed

DATA_STEPS = ["Cifar10ExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator",
              "LabelDriftValidator", "DataGate", "Transform"]


def _versions(base_path: str) -> dict:
    if not os.path.isdir(base_path):
        return {}
    return {name: model_digest(os.path.join(base_path, name))
            for name in sorted(os.listdir(base_path))}


def _run_killed_in_trainer(settings: tuple, timeout_s: float = 600) -> str:
    """`python -m pipeline run` killed with SIGKILL as soon as the Trainer trains;
    returns what it printed."""
    args = [sys.executable, "-u", "-m", "pipeline", "run", "--profile", "smoke"]
    for setting in settings:
        args += ["--set", setting]
    process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    printed = []
    deadline = time.monotonic() + timeout_s
    try:
        for line in process.stdout:
            printed.append(line)
            if line.startswith("Training resnet9 on"):
                process.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "".join(printed[-50:])
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL, "".join(printed[-50:])
    return "".join(printed)


@pytest.fixture(scope="module")
def retraining(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("retraining")
    data_root = tmp_path / "spans"
    write_small_dataset(str(data_root / "span-0"), cifar10_format.PYTHON_LAYOUT,
                        train_sizes=(40,), test_size=20, seed=0)
    settings = (f"data.data_dir={data_root}", f"output_dir={tmp_path / 'out'}",
                "training.epochs=2", "training.batch_size=16", "retraining.warm_start=true")
    config = pipeline_config.load("smoke", settings)
    runs = {"first": local_runner.run(config)}
    runs["versions_after_first"] = _versions(config.serving_model_base_path)

    write_small_dataset(str(data_root / "span-1"), cifar10_format.PYTHON_LAYOUT,
                        train_sizes=(24, 24), test_size=20, seed=1)
    runs["killed_output"] = _run_killed_in_trainer(settings)
    runs["versions_after_kill"] = _versions(config.serving_model_base_path)

    runs["after_kill"] = local_runner.run(config)
    runs["unchanged"] = local_runner.run(config)
    return config, data_root, runs


def _states(summary: dict) -> dict:
    return {name: details["state"] for name, details in summary["components"].items()}


def test_first_run_trains_blesses_and_pushes(retraining):
    config, _, runs = retraining
    decision = runs["first"]["decision"]
    assert decision["blessed"] and decision["pushed"]
    assert list(runs["versions_after_first"]) == [decision["pushed_version"]]


def test_a_killed_run_pushes_nothing_and_leaves_the_served_model(retraining):
    _, _, runs = retraining
    assert "Training resnet9 on 88 images" in runs["killed_output"]
    assert runs["versions_after_kill"] == runs["versions_after_first"]


def test_the_run_after_the_kill_reuses_finished_work_and_trains_on_both_spans(retraining):
    config, _, runs = retraining
    states = _states(runs["after_kill"])
    # The killed run finished ingesting span-1 and transforming both spans.
    assert {step: states[step] for step in DATA_STEPS} == {step: "CACHED" for step in DATA_STEPS}
    assert states["Trainer"] == "COMPLETE"
    model_run = runs["after_kill"]["components"]["Trainer"]["outputs"]["model_run"]
    with open(os.path.join(model_run, "metrics.json")) as metrics_file:
        metrics = json.load(metrics_file)
    # span-0's 40 images and span-1's 48, in batches of 16, for 2 epochs.
    assert metrics["steps"] == 2 * ((40 + 48) // 16)
    first_version = runs["first"]["decision"]["pushed_version"]
    assert metrics["warm_start_from"] == os.path.join(
        os.path.abspath(config.serving_model_base_path), first_version)


def test_the_new_model_is_compared_with_the_last_blessed_one_and_pushed(retraining):
    config, _, runs = retraining
    decision = runs["after_kill"]["decision"]
    assert decision["baseline_model"] == \
        runs["first"]["components"]["Trainer"]["outputs"]["model"]
    assert decision["blessed"] and decision["pushed"]
    versions = _versions(config.serving_model_base_path)
    assert len(versions) == 2 and decision["pushed_version"] in versions
    first_version = runs["first"]["decision"]["pushed_version"]
    assert versions[first_version] == runs["versions_after_first"][first_version]


def test_a_run_without_a_new_span_retrains_nothing_and_pushes_nothing(retraining):
    config, _, runs = retraining
    states = _states(runs["unchanged"])
    assert {step: states[step] for step in DATA_STEPS + ["Trainer"]} == \
        {step: "CACHED" for step in DATA_STEPS + ["Trainer"]}
    assert not runs["unchanged"]["decision"]["pushed"]
    assert len(_versions(config.serving_model_base_path)) == 2


def test_a_span_with_a_corrupt_file_fails_naming_it_and_pushes_nothing(retraining):
    config, data_root, runs = retraining
    versions_before = _versions(config.serving_model_base_path)
    write_small_dataset(str(data_root / "span-2"), cifar10_format.PYTHON_LAYOUT,
                        train_sizes=(16,), test_size=8, seed=2)
    corrupt = data_root / "span-2" / "cifar-10-batches-py" / "data_batch_1"
    corrupt.write_bytes(corrupt.read_bytes()[:1000])
    try:
        with pytest.raises(Cifar10DataError, match=str(corrupt)):
            local_runner.run(config)
    finally:
        corrupt.unlink()
    assert _versions(config.serving_model_base_path) == versions_before


def test_the_window_trains_on_the_newest_spans_only(retraining):
    config, _, runs = retraining
    from components.data import source as data_source
    source = data_source.locate(config.data.data_dir)
    windowed = pipeline_config.load("smoke", (f"data.data_dir={config.data.data_dir}",
                                              "retraining.training_spans=1"))
    assert local_runner.training_spans(windowed, source) == [source.spans[-1]]
    assert local_runner.training_spans(config, source) == list(source.spans)
    assert np.all(np.diff(source.spans) > 0)
