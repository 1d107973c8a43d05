"""The real pipeline on small data: LocalDagRunner, Beam, SQLite MLMD, every component.

ExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> Transform -> Trainer ->
Evaluator -> Pusher, then the artifacts' contents are checked against numpy on the same
files.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.orchestration import metadata

import pipeline_config
from components.contract import (CLASS_NAMES, DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE, IMAGE_ID_KEY,
                                 IMAGE_KEY, IMAGE_XF_KEY, LABEL_KEY, LABEL_XF_KEY, PIXELS_SIGNATURE,
                                 SAVED_MODEL_FILE, TEST_SPLIT, TRAIN_SPLIT)
from components.data import cifar10_format, source as data_source
from components.data.example_gen import encode_png
from pipeline import local_runner
from tests.support.data import first_images as _first_images, write_small_dataset

pytestmark = pytest.mark.slow  # whole pipeline runs

DATA_AND_TRAINING = ["Cifar10ExampleGen", "ImportSchemaGen", "StatisticsGen",
                     "ExampleValidator", "DataGate", "Transform", "Trainer"]
COMPONENTS = DATA_AND_TRAINING + ["Evaluator", "LatestBlessedModelResolver", "RegressionGate",
                                  "ServingLoadCheck",
                                  "Pusher", "TFLiteExport", "TFLitePusher"]


def _count_records(examples_uri: str, split: str) -> int:
    files = glob.glob(os.path.join(examples_uri, f"Split-{split}", "*"))
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _transform_statistics(transform_graph_uri: str) -> tuple:
    """Per-channel mean and std the transform graph applies, probed through the graph
    itself: z(0) = -mean/std and z(255) - z(0) = 255/std."""
    tft_output = tft.TFTransformOutput(transform_graph_uri)
    probes = np.stack([np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)])
    transformed = tft_output.transform_raw_features(
        {IMAGE_KEY: tf.constant([[encode_png(probe)] for probe in probes])},
        drop_unused_features=True)
    z = transformed[IMAGE_XF_KEY].numpy()[:, 0, 0, :].astype(np.float64)
    std = 255.0 / (z[1] - z[0])
    return -z[0] * std, std


def test_every_component_ran_and_published(pipeline_run):
    _, summary = pipeline_run
    assert sorted(summary["components"]) == sorted(COMPONENTS)
    for component in COMPONENTS:
        assert summary["components"][component]["state"] == "COMPLETE"
        for uri in summary["components"][component]["outputs"].values():
            assert os.path.isdir(uri), uri
    assert summary["anomalies"] == []


def test_artifacts_live_apart_from_the_metadata_store(pipeline_run):
    """artifacts_dir holds every artifact; output_dir the metadata store."""
    config, summary = pipeline_run
    artifacts_root = os.path.join(config.artifacts_dir, config.pipeline_name)
    uris = [uri for component in summary["components"].values()
            for uri in component.get("outputs", {}).values()]
    assert uris and all(uri.startswith(artifacts_root + os.sep) for uri in uris), uris
    assert summary["metadata"] == os.path.abspath(config.metadata_path)
    assert not os.path.exists(os.path.join(config.output_dir, "pipeline_root"))


def test_split_counts(pipeline_run):
    _, summary = pipeline_run
    examples = summary["components"]["Cifar10ExampleGen"]["outputs"]["examples"]
    assert _count_records(examples, TRAIN_SPLIT) == 3 * 30
    assert _count_records(examples, TEST_SPLIT) == 30
    transformed = summary["components"]["Transform"]["outputs"]["transformed_examples"]
    assert _count_records(transformed, TRAIN_SPLIT) == 90
    assert _count_records(transformed, TEST_SPLIT) == 30


def test_schema_describes_the_raw_features(pipeline_run):
    _, summary = pipeline_run
    schema_dir = summary["components"]["ImportSchemaGen"]["outputs"]["schema"]
    schema = schema_pb2.Schema()
    from google.protobuf import text_format
    with open(os.path.join(schema_dir, "schema.pbtxt")) as schema_file:
        text_format.Parse(schema_file.read(), schema)
    types = {feature.name: feature.type for feature in schema.feature}
    assert types == {IMAGE_KEY: schema_pb2.BYTES, LABEL_KEY: schema_pb2.INT,
                     IMAGE_ID_KEY: schema_pb2.BYTES}


def test_transform_statistics_equal_numpy_over_the_train_split(pipeline_run):
    config, summary = pipeline_run
    source = data_source.locate(config.data.data_dir)
    train_pixels = _first_images(source, source.train_pattern, 30).reshape(-1, 3)
    graph_uri = summary["components"]["Transform"]["outputs"]["transform_graph"]

    mean, std = _transform_statistics(graph_uri)

    np.testing.assert_allclose(mean, train_pixels.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, train_pixels.std(axis=0), rtol=1e-5)
    # The test split was normalised with the train statistics, not its own.
    test_images = _first_images(source, source.test_pattern, 30)
    transformed_uri = summary["components"]["Transform"]["outputs"]["transformed_examples"]
    tft_output = tft.TFTransformOutput(graph_uri)
    feature_spec = tft_output.transformed_feature_spec()
    files = glob.glob(os.path.join(transformed_uri, f"Split-{TEST_SPLIT}", "*"))
    normalised = {}
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        parsed = tf.io.parse_single_example(record, feature_spec)
        normalised[float(parsed[IMAGE_XF_KEY].numpy().sum())] = (
            parsed[IMAGE_XF_KEY].numpy(), int(parsed[LABEL_XF_KEY]))
    expected = (test_images[0].astype(np.float64) - train_pixels.mean(axis=0)) / \
        train_pixels.std(axis=0)
    match = min(normalised, key=lambda total: abs(total - expected.sum()))
    np.testing.assert_allclose(normalised[match][0], expected, rtol=1e-4, atol=1e-4)


def decision_comparison_is_a_tie(decision: dict) -> bool:
    comparison = decision["comparison"]
    return (comparison["candidate_only_correct"] == comparison["baseline_only_correct"] == 0
            and not comparison["regression"] and comparison["p_value"] == 1.0)


def test_rerun_with_unchanged_inputs_is_cached_and_pushes_nothing(pipeline_run):
    config, first = pipeline_run
    versions_before = sorted(os.listdir(config.serving_model_base_path))
    again = local_runner.run(config)
    states = {c: d["state"] for c, d in again["components"].items()}
    assert {c: states[c] for c in DATA_AND_TRAINING + ["Evaluator"]} == \
        {c: "CACHED" for c in DATA_AND_TRAINING + ["Evaluator"]}
    # The resolver now returns the blessed model as the baseline, so the RegressionGate
    # re-runs and blesses the model against itself; the Pusher sees it is served.
    assert states["RegressionGate"] == "COMPLETE"
    assert decision_comparison_is_a_tie(again["decision"])
    decision = again["decision"]
    assert decision["blessed"] and not decision["pushed"]
    assert decision["already_pushed_as"] == first["decision"]["pushed_version"]
    # Candidate and baseline are one artifact: one MLMD event carries both input keys.
    model_uri = first["components"]["Trainer"]["outputs"]["model"]
    assert again["components"]["Evaluator"]["inputs"]["model"] == model_uri
    assert decision["baseline_model"] == model_uri
    assert sorted(os.listdir(config.serving_model_base_path)) == versions_before


def test_bad_data_behind_the_check_publishes_nothing(tmp_path):
    """A corrupt file that reaches ExampleGen (the runner's check bypassed, as under an
    orchestrator that does not run it) fails the run and publishes no artifact."""
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.PYTHON_LAYOUT, train_sizes=(10,), test_size=5)
    cifar10_format.write_batch(os.path.join(root, "cifar-10-batches-py", "test_batch"),
                               np.zeros((2, 32, 32, 3), np.uint8), [4, 11])
    config = pipeline_config.load("smoke", (f"data.data_dir={root}",
                                            f"output_dir={tmp_path / 'out'}"))
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner

    from pipeline.builders import local_pipeline
    with pytest.raises(Exception, match="has label 11"):
        LocalDagRunner().run(local_pipeline(config, data_source.locate(root)))

    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(config.metadata_path))
    assert [a for a in store.get_artifacts()
            if a.state == metadata_store_pb2.Artifact.LIVE] == []
    executions = store.get_executions()
    assert [e.last_known_state for e in executions] == [metadata_store_pb2.Execution.FAILED]


def test_trainer_exports_a_model_and_its_run_records(pipeline_run):
    _, summary = pipeline_run
    outputs = summary["components"]["Trainer"]["outputs"]
    serving_dir = os.path.join(outputs["model"], "Format-Serving")
    assert os.path.exists(os.path.join(serving_dir, SAVED_MODEL_FILE))
    loaded = tf.saved_model.load(serving_dir)
    assert set(loaded.signatures) == {DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE, PIXELS_SIGNATURE}
    run_dir = outputs["model_run"]
    with open(os.path.join(run_dir, "metrics.json")) as metrics_file:
        metrics = json.load(metrics_file)
    assert metrics["steps"] == 2 * (90 // 32) and metrics["parameters"] == 6_577_600
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    assert os.path.getsize(os.path.join(run_dir, "curves.png")) > 1000
    assert glob.glob(os.path.join(run_dir, "logs", "train", "events.out.tfevents.*"))


def test_blessed_model_is_pushed_as_an_integer_version(pipeline_run):
    config, summary = pipeline_run
    decision = summary["decision"]
    # smoke's gate is 0: the blessed path; the first run has no baseline.
    assert decision["blessed"] and decision["pushed"]
    assert decision["baseline_model"] is None and decision["accuracy_threshold"] == 0.0
    assert decision["example_count"] == 30  # images_per_file=30 of the 50
    assert sum(row["count"] for row in decision["per_class"].values()) == 30
    assert set(decision["per_class"]) <= set(CLASS_NAMES)
    assert decision["accuracy"] == pytest.approx(
        sum(row["accuracy"] * row["count"] for row in decision["per_class"].values()) / 30)
    # A class's recall is its accuracy (its images classified right), whether or not
    # the model ever predicts it.
    for name, row in decision["per_class"].items():
        assert row["recall"] == pytest.approx(row["accuracy"]), name
    # The gate's marker file, as TFX's Evaluator writes one.
    assert os.path.exists(os.path.join(
        summary["components"]["RegressionGate"]["outputs"]["gate_blessing"], "BLESSED"))
    # TF Serving's loader ran it before the push (no Docker here: the ServingLoadCheck).
    assert decision["serving_check"]["ok"], decision["serving_check"]
    assert decision["serving_check"]["by"] == "ServingLoadCheck"
    version = decision["pushed_version"]
    assert version.isdigit()
    pushed_dir = os.path.join(config.serving_model_base_path, version)
    assert decision["pushed_destination"] == os.path.abspath(pushed_dir)
    trained_dir = os.path.join(summary["components"]["Trainer"]["outputs"]["model"],
                               "Format-Serving")
    from components.push.executor import model_digest
    assert model_digest(pushed_dir) == model_digest(trained_dir)


def test_a_gate_the_model_cannot_pass_blesses_and_pushes_nothing(pipeline_run, tmp_path):
    """The first run's data and model (cached) under a 100% gate: NOT BLESSED, with the
    reason, and no version directory is written. Last in this file: it records a
    NOT_BLESSED verdict in the shared run's metadata."""
    config, _ = pipeline_run
    serving_dir = tmp_path / "serving"
    strict = dataclasses.replace(
        config, evaluation=dataclasses.replace(config.evaluation, accuracy_threshold=1.0),
        push=dataclasses.replace(config.push, serving_model_dir=str(serving_dir)))
    result = local_runner.run(strict)
    assert result["components"]["Trainer"]["state"] == "CACHED"
    decision = result["decision"]
    assert not decision["blessed"] and not decision["pushed"]
    assert decision["accuracy"] < 1.0 and decision["accuracy_threshold"] == 1.0
    assert any("below the threshold 100.00%" in reason for reason in decision["reasons"])
    assert not serving_dir.exists() or list(serving_dir.rglob(SAVED_MODEL_FILE)) == []
