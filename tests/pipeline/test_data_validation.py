"""Data validation stops a run, on span data, run after run on one output directory:

1. span-0: trained, blessed and pushed (version A);
2. span-1, a normal span, passes the drift check against span-0 (run to the DataGate);
3. span-2, 70% of one class, is drift: the run exits 4 before Transform, lists the
   anomaly, trains nothing, and A is still the only version served;
4. span-3, a normal span, passes against span-1 (not the stopped span-2) and the model
   trains on spans 0, 1 and 3 only;
5. span-4, skewed again, goes through with validation.block_on_anomalies=false, the
   anomaly still reported; the override covers the whole run, so the stopped span-2
   is let through too and trained on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from components.contract import IMAGE_SHAPE
from components.data import cifar10_format
from tests.support.data import REPO_ROOT, random_batch, write_small_dataset

pytestmark = pytest.mark.slow  # five pipeline runs, three of them training
IMAGES_PER_SPAN = 120

SKEWED_CLASS = 3


def _run(data_root, output_dir, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--profile", "smoke",
         "--data-dir", str(data_root), "--output-dir", str(output_dir),
         "--set", "training.batch_size=16", *extra],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)


def _summary(completed) -> dict:
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _skewed_batch(count: int, seed: int) -> tuple:
    images, labels = random_batch(count, seed)
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(count) < 0.7, SKEWED_CLASS, labels)
    return images.reshape((count,) + IMAGE_SHAPE), labels


def _served_versions(output_dir) -> list:
    base_path = os.path.join(output_dir, "serving_model", "cifar10")
    return sorted(os.listdir(base_path)) if os.path.isdir(base_path) else []


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("validation")
    data_root, output_dir = tmp_path / "spans", tmp_path / "out"
    write_small_dataset(str(data_root / "span-0"), cifar10_format.PYTHON_LAYOUT,
                        train_sizes=(60, 60), test_size=60, seed=0)
    results = {"output_dir": output_dir, "first": _run(data_root, output_dir)}
    results["versions_after_first"] = _served_versions(output_dir)

    write_small_dataset(str(data_root / "span-1"), cifar10_format.PYTHON_LAYOUT,
                        train_sizes=(60, 60), test_size=60, seed=10)
    results["normal"] = _run(data_root, output_dir, "--to-node", "DataGate")

    cifar10_format.write_dataset(
        str(data_root / "span-2"), cifar10_format.PYTHON_LAYOUT,
        [_skewed_batch(60, 20), _skewed_batch(60, 21)], _skewed_batch(60, 22))
    results["skewed"] = _run(data_root, output_dir)
    results["versions_after_skewed"] = _served_versions(output_dir)

    write_small_dataset(str(data_root / "span-3"), cifar10_format.PYTHON_LAYOUT,
                        train_sizes=(60, 60), test_size=60, seed=30)
    results["after_skewed"] = _run(data_root, output_dir)

    cifar10_format.write_dataset(
        str(data_root / "span-4"), cifar10_format.PYTHON_LAYOUT,
        [_skewed_batch(60, 40), _skewed_batch(60, 41)], _skewed_batch(60, 42))
    results["override"] = _run(data_root, output_dir,
                               "--set", "validation.block_on_anomalies=false")
    return results


def test_the_first_span_is_trained_and_pushed(runs):
    assert runs["first"].returncode == 0, runs["first"].stderr[-3000:]
    assert len(runs["versions_after_first"]) == 1


def test_a_normal_span_passes_the_drift_check_against_the_previous_one(runs):
    assert runs["normal"].returncode == 0, runs["normal"].stderr[-3000:]
    summary = _summary(runs["normal"])
    assert summary["components"]["LabelDriftValidator"]["state"] == "COMPLETE"
    assert summary["components"]["DataGate"]["state"] == "COMPLETE"
    assert summary["anomalies"] == []
    assert "Data validation: no anomalies" in runs["normal"].stdout


def test_a_skewed_span_stops_the_run_before_training_and_keeps_the_served_model(runs):
    skewed = runs["skewed"]
    assert skewed.returncode == 4, skewed.stderr[-3000:]
    assert "error: data validation stopped the run" in skewed.stderr
    assert "drift from the previous span, split train_train, label: " in skewed.stderr
    summary = _summary(skewed)
    drifted = {(a["validator"], a["split"], a["feature"]) for a in summary["anomalies"]}
    assert drifted == {("LabelDriftValidator", "train_train", "label"),
                       ("LabelDriftValidator", "test_test", "label")}
    # The summary lists each anomaly before the JSON line.
    assert "LabelDriftValidator, split train_train, label:" in skewed.stdout
    components = summary["components"]
    assert components["DataGate"]["state"] == "FAILED"
    assert not {"Transform", "Trainer", "Evaluator", "RegressionGate", "Pusher"} & set(
        components)
    assert runs["versions_after_skewed"] == runs["versions_after_first"]


def test_the_next_normal_span_passes_and_the_stopped_span_is_not_trained_on(runs):
    after = runs["after_skewed"]
    assert after.returncode == 0, after.stderr[-3000:]
    summary = _summary(after)
    # Compared with span-1, the last accepted span: no drift.
    assert summary["anomalies"] == []
    assert summary["components"]["Trainer"]["state"] == "COMPLETE"
    assert f"Training resnet9 on {3 * IMAGES_PER_SPAN} images" in after.stdout
    # Span-2, validated again as an earlier span of the window, is reported and skipped.
    assert "Span 2 has data anomalies: it is left out of training" in after.stdout


def test_the_override_lets_the_skewed_span_through_with_a_warning(runs):
    override = runs["override"]
    assert override.returncode == 0, override.stderr[-3000:]
    assert "DataGate: WARNING (validation.block_on_anomalies=false)" in override.stdout
    summary = _summary(override)
    assert summary["components"]["Trainer"]["state"] == "COMPLETE"
    assert summary["decision"]["pushed"]
    assert {a["feature"] for a in summary["anomalies"]} == {"label"}
    # The operator let the skewed spans through: all five are trained on.
    assert f"Training resnet9 on {5 * IMAGES_PER_SPAN} images" in override.stdout


def test_infer_schema_writes_what_tfdv_infers_from_the_latest_statistics(runs, tmp_path):
    output_dir = runs["output_dir"]
    written = tmp_path / "inferred.pbtxt"
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline", "infer-schema", "--profile", "smoke",
         "--output-dir", str(output_dir), "--out", str(written)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"diff components/validation/schema.pbtxt {written}" in completed.stdout
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2
    schema = text_format.Parse(written.read_text(), schema_pb2.Schema())
    features = {feature.name: feature for feature in schema.feature}
    assert set(features) == {"image", "label", "image_id"}
    assert features["image"].HasField("image_domain")  # semantic-domain statistics
    # An output directory without runs is refused with the path named.
    empty = subprocess.run(
        [sys.executable, "-m", "pipeline", "infer-schema", "--profile", "smoke",
         "--output-dir", str(tmp_path / "nothing")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert empty.returncode == 2 and "no statistics of pipeline" in empty.stderr
