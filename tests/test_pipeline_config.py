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


@pytest.mark.parametrize("override, message", [
    ("orchestrator=kubeflow", "orchestrator: 'kubeflow' unknown (known: local, beam)"),
    ("data.layout=tar", "data.layout: 'tar' unknown (known: python, binary)"),
    ("data.images_per_file=0", "data.images_per_file: must be >= 1"),
    ("beam.direct_running_mode=fast", "beam.direct_running_mode: 'fast' unknown (known: "
                                      "in_memory, multi_threading, multi_processing)"),
    ("beam.direct_num_workers=-1", "beam.direct_num_workers: must be >= 0"),
    ("training.model=resnet8", "training.model: 'resnet8' unknown (known: airbench94, "),
    ("training.lr_schedule=cosine", "training.lr_schedule: 'cosine' unknown (known: "
                                    "piecewise_linear, step)"),
    ("training.mixed_precision=fp8", "training.mixed_precision: 'fp8' unknown (known: auto, "
                                     "off, float16, bfloat16)"),
    ("training.xla=maybe", "training.xla: 'maybe' unknown (known: auto, on, off)"),
    ("training.distribution=tpu", "training.distribution: 'tpu' unknown (known: default, "
                                  "mirrored, multi_worker_mirrored)"),
    ("training.device=npu", "training.device: 'npu' unknown (known: auto, gpu, cpu)"),
    ("training.steps_per_execution=0", "training.steps_per_execution: must be > 0"),
    ("training.lr_values=0.1,0.2", "training.lr_knots and training.lr_values: "
                                   "piecewise_linear needs as many values as knots"),
    ("training.target_accuracy=94", "training.target_accuracy: must be within [0, 1]"),
    ("schedule.max_active_runs=0", "schedule.max_active_runs: must be >= 1"),
    ("push.infra_validation=kind", "push.infra_validation: 'kind' unknown (known: auto, "
                                   "docker, in_process, off)"),
    ("tflite.variants=float16,int4", "tflite.variants: int4 unknown (known: float16, int8)"),
])
def test_every_bad_value_is_refused_as_the_config_loads(override, message):
    """Each section checks its own fields when the config loads (the CLI turns the
    error into exit 2 before any component runs), naming the field and its values."""
    with pytest.raises(ConfigError) as refused:
        pipeline_config.load("smoke", (override,))
    assert message in str(refused.value)


@pytest.mark.parametrize("old, new", [("export.tflite_variants=int8", "tflite.variants"),
                                      ("export.tflite_max_drop=0.01", "tflite.max_drop")])
def test_the_renamed_export_section_names_its_new_name(old, new):
    with pytest.raises(ConfigError, match=f"renamed {new} "):
        pipeline_config.load("smoke", (old,))
    assert pipeline_config.load("smoke", (f"{new}={old.partition('=')[2]}",))
