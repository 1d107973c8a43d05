"""`python -m pipeline evaluate` on the model the smoke pipeline exported."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from components.data import source as data_source
from pipeline import evaluate
from tests.support.data import REPO_ROOT


def test_served_accuracy_equals_the_trainers_own_evaluation(pipeline_run):
    config, summary = pipeline_run
    trainer = summary["components"]["Trainer"]["outputs"]
    with open(os.path.join(trainer["model_run"], "metrics.json")) as metrics_file:
        trainer_metrics = json.load(metrics_file)
    output = io.StringIO()

    # The Trainer evaluated the 30 test images it was given, with flip TTA like the
    # exported model; served through PNG bytes, the same model must agree exactly.
    result = evaluate.evaluate(trainer["model"], data_source.locate(config.data.data_dir),
                               limit=30, stream=output)

    assert result["images"] == 30
    assert result["accuracy"] == pytest.approx(trainer_metrics["eval_accuracy_tta_flip"])
    table = output.getvalue()
    assert "airplane" in table and "truck" in table and table.count("\n") == 13


def test_cli_names_a_directory_without_a_model(tmp_path, pipeline_run):
    config, _ = pipeline_run
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "evaluate", "--model", str(tmp_path),
         "--data-dir", config.data.data_dir], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert f"error: {tmp_path}: no saved_model.pb" in result.stderr
