"""Profiles and command-line overrides."""

from __future__ import annotations

import pytest

import pipeline_config
from pipeline_config import ConfigError


def test_profiles_share_components_and_differ_in_size():
    full, smoke = pipeline_config.load("full"), pipeline_config.load("smoke")
    assert full.data.images_per_file is None
    assert smoke.data.images_per_file == 100
    assert full.beam.pipeline_args() == [
        "--runner=FnApiRunner", "--direct_running_mode=multi_processing",
        "--direct_num_workers=0"]
    assert full.pipeline_name != smoke.pipeline_name


def test_overrides_are_typed():
    config = pipeline_config.load("full", (
        "data.images_per_file=25", "enable_cache=false", "beam.direct_num_workers=4",
        "data.data_dir=/data/cifar", "beam.extra_args=--a=1,--b=2"))
    assert config.data.images_per_file == 25 and config.enable_cache is False
    assert config.beam.direct_num_workers == 4 and config.data.data_dir == "/data/cifar"
    assert config.beam.pipeline_args()[-2:] == ["--a=1", "--b=2"]
    assert pipeline_config.load("smoke", ("data.images_per_file=none",)).data.images_per_file \
        is None


def test_remote_runner_args_pass_through_without_direct_flags():
    config = pipeline_config.load("full", (
        "beam.runner=DataflowRunner", "beam.extra_args=--project=p,--region=europe-west4"))
    assert config.beam.pipeline_args() == [
        "--runner=DataflowRunner", "--project=p", "--region=europe-west4"]


@pytest.mark.parametrize("override, message", [
    ("beam.workers=2", "unknown setting 'workers'"),
    ("data.images_per_file=many", "expected int"),
    ("enable_cache=maybe", "expected true or false"),
    ("beam=1", "is a section"),
    ("profile", "expected section.field=value"),
])
def test_bad_overrides_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        pipeline_config.load("full", (override,))


def test_unknown_profile():
    with pytest.raises(ConfigError, match="unknown profile 'huge'"):
        pipeline_config.load("huge")


@pytest.mark.parametrize("override, message", [
    ("evaluation.accuracy_threshold=1.2", "evaluation.accuracy_threshold: must be within"),
    ("evaluation.regression_tolerance=-0.1", "evaluation.regression_tolerance: must be >= 0"),
    ("evaluation.regression_confidence=0.3", "evaluation.regression_confidence: must be within"),
    ("validation.label_drift_threshold=1.5", "validation.label_drift_threshold: must be within"),
    ("validation.block_on_anomalies=maybe", "validation.block_on_anomalies: expected true or false"),
    ("push.model_name=a/b", "push.model_name"),
])
def test_gate_and_push_settings_are_checked(override, message):
    with pytest.raises(pipeline_config.ConfigError, match=message):
        pipeline_config.load("smoke", (override,))


def test_full_profile_gate_and_serving_layout():
    config = pipeline_config.load("full", ("output_dir=/srv/out",))
    assert config.evaluation.accuracy_threshold == 0.94
    assert config.evaluation.regression_confidence == 0.95
    assert config.evaluation.regression_tolerance == 0.005
    assert config.validation.block_on_anomalies and config.validation.schema_file is None
    assert config.serving_model_base_path == "/srv/out/serving_model/cifar10"
    moved = pipeline_config.load("full", ("push.serving_model_dir=/models",
                                          "push.model_name=cifar"))
    assert moved.serving_model_base_path == "/models/cifar"
