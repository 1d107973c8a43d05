"""Typed pipeline configuration with named profiles.

`full` is the mission: all of official CIFAR-10. `smoke` runs the same components on
a few hundred images, for CPU checks and CI. Any field can be overridden from the
command line with `--set section.field=value` (for example
`--set beam.direct_running_mode=in_memory`).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import typing
from typing import Optional, Tuple

from components.console import UserError
from components.data.cifar10_format import BINARY_LAYOUT, PYTHON_LAYOUT
from components.data.source import DEFAULT_CACHE_DIR
from components.monitoring.config import MonitoringConfig
from components.tflite.config import TFLiteConfig
from components.training.config import TrainingConfig, training_config

# The values the named settings take (their sections' `problem` checks them).
ORCHESTRATORS = ("local", "beam")
LAYOUTS = (PYTHON_LAYOUT, BINARY_LAYOUT)
DIRECT_RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
INFRA_VALIDATION = ("auto", "docker", "in_process", "off")
_ACCELERATOR = re.compile(r"^[A-Z][A-Z0-9_]*:[1-9][0-9]*$")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    # A directory, a layout directory, a directory of span-N/ or a tarball; None
    # downloads the official archive into cache_dir.
    data_dir: Optional[str] = None
    cache_dir: str = DEFAULT_CACHE_DIR
    # Read when the data holds both layouts, and the archive to download.
    layout: str = PYTHON_LAYOUT
    # Keep only the first N images of each batch file (None: all of them).
    images_per_file: Optional[int] = None
    # Override the official archive's address and checksum (mirrors, tests).
    download_url: Optional[str] = None
    download_md5: Optional[str] = None

    def problem(self) -> str:
        if self.layout not in LAYOUTS:
            return f"data.layout: {self.layout!r} unknown (known: {', '.join(LAYOUTS)})"
        if self.images_per_file is not None and self.images_per_file < 1:
            return f"data.images_per_file: must be >= 1 (or unset), got {self.images_per_file}"
        return ""


@dataclasses.dataclass(frozen=True)
class BeamConfig:
    # FnApiRunner is the engine Beam's DirectRunner uses for batch pipelines; naming
    # it directly skips Beam 2.74's attempt to download and switch to the Prism runner.
    runner: str = "FnApiRunner"
    # in_memory | multi_threading | multi_processing
    direct_running_mode: str = "multi_processing"
    # 0: one worker per CPU core.
    direct_num_workers: int = 0
    # Passed through unchanged after the flags above, e.g. Dataflow's
    # ("--project=...", "--region=...", "--temp_location=gs://...").
    extra_args: Tuple[str, ...] = ()

    def problem(self) -> str:
        if self.direct_running_mode not in DIRECT_RUNNING_MODES:
            return (f"beam.direct_running_mode: {self.direct_running_mode!r} unknown "
                    f"(known: {', '.join(DIRECT_RUNNING_MODES)})")
        if self.direct_num_workers < 0:
            return (f"beam.direct_num_workers: must be >= 0 (0: one per core), "
                    f"got {self.direct_num_workers}")
        return ""

    def pipeline_args(self) -> list:
        args = [f"--runner={self.runner}"]
        if self.runner in ("FnApiRunner", "DirectRunner"):
            args += [f"--direct_running_mode={self.direct_running_mode}",
                     f"--direct_num_workers={self.direct_num_workers}"]
        return args + list(self.extra_args)


@dataclasses.dataclass(frozen=True)
class TransformConfig:
    # Transform's own pre/post-transform statistics over 3,072 float features per
    # image cost minutes and duplicate StatisticsGen; off unless asked for.
    disable_statistics: bool = True

    def problem(self) -> str:
        return ""  # one bool, typed as it is set


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
    # The reviewed schema every span is checked against; None: the one in the
    # repository (components/validation/schema.pbtxt). A path the workers can read.
    schema_file: Optional[str] = None
    # Anomalies (schema or drift) stop the run before Transform with exit status 4;
    # false: they are reported as a warning and the run goes on.
    block_on_anomalies: bool = True
    # With span data: the largest difference of one class's share of a split between
    # the new span and the previous one (L-infinity distance) that is not drift.
    label_drift_threshold: float = 0.1

    def problem(self) -> str:
        if not 0.0 < self.label_drift_threshold <= 1.0:
            return (f"validation.label_drift_threshold: must be within (0, 1], "
                    f"got {self.label_drift_threshold}")
        return ""


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    # The least overall test accuracy (the whole test split, flip TTA as exported)
    # that blesses a model.
    accuracy_threshold: float = 0.94
    # No regression on the last blessed model, judged image by image on the same test
    # split (components/evaluation/paired.py): a candidate is rejected when it is
    # worse with this confidence (one-sided McNemar; 1: never on the test alone) ...
    regression_confidence: float = 0.95
    # ... or worse by more than this fraction of the test images (0.005: half a point).
    regression_tolerance: float = 0.005

    def problem(self) -> str:
        if not 0.0 <= self.accuracy_threshold <= 1.0:
            return (f"evaluation.accuracy_threshold: must be within [0, 1], "
                    f"got {self.accuracy_threshold}")
        if not 0.5 <= self.regression_confidence <= 1.0:
            return (f"evaluation.regression_confidence: must be within [0.5, 1], "
                    f"got {self.regression_confidence}")
        if self.regression_tolerance < 0.0:
            return (f"evaluation.regression_tolerance: must be >= 0, "
                    f"got {self.regression_tolerance}")
        return ""


@dataclasses.dataclass(frozen=True)
class RetrainingConfig:
    # With span-N/ data: train on the newest N spans ingested so far (0: every span).
    # Each run ingests the spans it has not seen; a run with no new or changed span
    # retrains nothing (every component's inputs are unchanged, so all are cached).
    training_spans: int = 0
    # Start training from the weights of the last pushed model instead of from scratch
    # (with the same schedule). Off: every model is trained from scratch, as in the
    # recipe.
    warm_start: bool = False

    def problem(self) -> str:
        if self.training_spans < 0:
            return (f"retraining.training_spans: must be >= 0 (0: every span), "
                    f"got {self.training_spans}")
        return ""


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    """When Airflow runs the pipeline (`pipeline/airflow_dag.py`)."""

    # Cron expression (or an Airflow preset such as @daily).
    cron: str = "0 3 * * *"
    # ISO date of the first interval, UTC.
    start_date: str = "2026-01-01"
    # Retries of a failed component task, and the wait before each.
    retries: int = 1
    retry_delay_minutes: int = 10
    # False: a DAG switched on late runs once, not once per missed interval.
    catchup: bool = False
    # One run at a time: two runs would race for the same spans and serving path.
    max_active_runs: int = 1

    def problem(self) -> str:
        try:
            datetime.date.fromisoformat(self.start_date)
        except ValueError:
            return (f"schedule.start_date: expected an ISO date (YYYY-MM-DD), got "
                    f"{self.start_date!r}")
        if not self.cron.startswith("@") and len(self.cron.split()) != 5:
            return f"schedule.cron: expected five cron fields or an @preset, got {self.cron!r}"
        if self.retries < 0 or self.retry_delay_minutes < 0:
            return "schedule.retries and schedule.retry_delay_minutes: must be >= 0"
        if self.max_active_runs < 1:
            return f"schedule.max_active_runs: must be >= 1, got {self.max_active_runs}"
        return ""


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    """Where the pipeline compiled for Kubeflow Pipelines v2 / Vertex AI runs
    (`pipeline/kubeflow_runner.py`). Every path must be one the cluster can read."""

    # The project's image: the Dockerfile's `pipeline` target, pushed where the
    # cluster pulls from (`docker build --target pipeline -t IMAGE .`).
    image: str = "gcr.io/my-project/cifar10-tfx:latest"
    pipeline_root: str = "gs://my-bucket/cifar10-tfx/pipeline_root"
    # The data root: cifar-10-batches-py/ (or -bin/) in it, or span-N/ directories.
    data_root: str = "gs://my-bucket/cifar10/spans"
    data_in_spans: bool = True
    # TF Serving's model base path is <serving_model_dir>/<push.model_name>.
    serving_model_dir: str = "gs://my-bucket/cifar10-tfx/serving_model"
    # What the Trainer's and the Evaluator's pods ask for. An accelerator is TYPE:COUNT
    # as Vertex names it (NVIDIA_TESLA_T4:1, NVIDIA_L4:1, NVIDIA_TESLA_A100:2), "" for
    # none. CPUs are vCPUs and memory is GB, 0 leaves one unset; Vertex picks the
    # machine from the limits, Kubeflow on GKE schedules on the requests. The defaults
    # fit one T4 on an n1-standard-8 (8 vCPUs, 30 GB), enough for the 600 MB train
    # split in memory; the Evaluator runs TFMA on Beam and needs no accelerator.
    trainer_accelerator: str = "NVIDIA_TESLA_T4:1"
    trainer_cpu_request: float = 4.0
    trainer_cpu_limit: float = 8.0
    trainer_memory_request_gb: float = 16.0
    trainer_memory_limit_gb: float = 30.0
    evaluator_accelerator: str = ""
    evaluator_cpu_request: float = 2.0
    evaluator_cpu_limit: float = 4.0
    evaluator_memory_request_gb: float = 8.0
    evaluator_memory_limit_gb: float = 16.0

    def accelerator(self, component: str) -> Optional[Tuple[str, int]]:
        """(type, count) of `component`'s accelerator ("trainer" or "evaluator"), or
        None for none; the setting is known to be well-formed (`problem`)."""
        setting = getattr(self, f"{component}_accelerator")
        if not setting:
            return None
        accelerator_type, _, count = setting.rpartition(":")
        return accelerator_type, int(count)

    def problem(self) -> str:
        for component in ("trainer", "evaluator"):
            accelerator = getattr(self, f"{component}_accelerator")
            if accelerator and not _ACCELERATOR.match(accelerator):
                return (f"kubeflow.{component}_accelerator: expected TYPE:COUNT with a "
                        f"positive count (e.g. NVIDIA_TESLA_T4:1) or '' for none, "
                        f"got {accelerator!r}")
            for resource in ("cpu", "memory"):
                unit = "_gb" if resource == "memory" else ""
                request_field = f"{component}_{resource}_request{unit}"
                limit_field = f"{component}_{resource}_limit{unit}"
                request, limit = getattr(self, request_field), getattr(self, limit_field)
                for name, value in ((request_field, request), (limit_field, limit)):
                    if not 0.0 <= value < float("inf"):
                        return f"kubeflow.{name}: must be >= 0 (0: unset), got {value}"
                if request and limit and request > limit:
                    return (f"kubeflow.{request_field}: {request} is over "
                            f"kubeflow.{limit_field} ({limit})")
        return ""


@dataclasses.dataclass(frozen=True)
class PushConfig:
    # Where blessed models go; None: <output_dir>/serving_model. TF Serving's model
    # base path is <serving_model_dir>/<model_name>, versions are directories in it.
    serving_model_dir: Optional[str] = None
    model_name: str = "cifar10"
    # Before a push, the model must load and answer in TF Serving. auto: TFX's
    # InfraValidator (TF Serving in Docker) when a Docker daemon answers, else the
    # ServingLoadCheck (TF Serving's loader in a process of its own); docker: always
    # InfraValidator; in_process: always the ServingLoadCheck; off: neither.
    infra_validation: str = "auto"
    serving_image_tag: str = "2.16.1"

    def problem(self) -> str:
        if self.infra_validation not in INFRA_VALIDATION:
            return (f"push.infra_validation: {self.infra_validation!r} unknown (known: "
                    f"{', '.join(INFRA_VALIDATION)})")
        if not self.model_name or "/" in self.model_name:
            return (f"push.model_name: must be a non-empty name without '/', "
                    f"got {self.model_name!r}")
        return ""


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    profile: str
    pipeline_name: str = "cifar10-resnet9"
    # metadata.sqlite, the run lock, logs and reports live here, and the artifacts
    # unless artifacts_dir says otherwise.
    output_dir: str = "outputs"
    # Where the artifacts go: TFX's pipeline root is <artifacts_dir>/<pipeline_name>.
    # None: <output_dir>/pipeline_root. A URI of TensorFlow's and Beam's filesystems
    # (gs://bucket/path) puts them where remote Beam workers reach them (Dataflow),
    # while the metadata store and the run lock stay in output_dir on this machine.
    artifacts_dir: Optional[str] = None
    # LocalDagRunner (local) or TFX's BeamDagRunner (beam).
    orchestrator: str = "local"
    enable_cache: bool = True
    data: DataConfig = DataConfig()
    beam: BeamConfig = BeamConfig()
    transform: TransformConfig = TransformConfig()
    validation: ValidationConfig = ValidationConfig()
    training: TrainingConfig = training_config("resnet9")
    evaluation: EvaluationConfig = EvaluationConfig()
    push: PushConfig = PushConfig()
    # On-device TensorFlow Lite variants of every trained model (components/tflite/).
    tflite: TFLiteConfig = TFLiteConfig()
    retraining: RetrainingConfig = RetrainingConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    kubeflow: KubeflowConfig = KubeflowConfig()
    # `python -m pipeline monitor`: drift of served traffic (components/monitoring/).
    monitoring: MonitoringConfig = MonitoringConfig()

    @property
    def serving_model_base_path(self) -> str:
        serving_model_dir = (self.push.serving_model_dir
                             or os.path.join(self.output_dir, "serving_model"))
        return os.path.join(serving_model_dir, self.push.model_name)

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.artifacts_dir
                            or os.path.join(self.output_dir, "pipeline_root"),
                            self.pipeline_name)

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.output_dir, "metadata.sqlite")


PROFILES = {
    "full": PipelineConfig(profile="full"),
    "smoke": PipelineConfig(
        profile="smoke",
        pipeline_name="cifar10-resnet9-smoke",
        data=DataConfig(images_per_file=100),
        # On small data the ~13 s per-stage worker start-up of multi_processing
        # dominates; in-process is several times faster.
        beam=BeamConfig(direct_running_mode="in_memory", direct_num_workers=1),
        # The same ResNet9 and schedule shape for a few steps; the rates scaled by
        # 64/512 with the batch (linear scaling).
        training=training_config("resnet9", epochs=2, batch_size=64,
                                 lr_knots=(0.0, 1.0, 2.0), lr_values=(0.01, 0.05, 0.0),
                                 eval_every_epoch=False),
        # Two epochs on a few hundred images cannot reach 94%, nor be compared
        # meaningfully: a gate that blesses any model lets CPU checks exercise the
        # blessed path and the push (tests also run a gate the model cannot pass).
        evaluation=EvaluationConfig(accuracy_threshold=0.0, regression_confidence=1.0,
                                    regression_tolerance=1.0),
        # A few dozen test images per span: random class shares differ by up to ~0.3
        # between spans; a span that is 70% one class is still ~0.6 off.
        validation=ValidationConfig(label_drift_threshold=0.5),
        # The same sampling noise between a few dozen test images and a few hundred
        # served ones: shares differ by up to ~0.25 and confidence histograms diverge.
        monitoring=MonitoringConfig(class_share_threshold=0.35,
                                    confidence_divergence_threshold=0.3),
        # Converting and checking two TFLite variants adds ~20 s to a run of seconds:
        # on with --set tflite.variants=float16,int8.
        tflite=TFLiteConfig(variants=()),
    ),
}
for _model in ("resnet20", "resnet56", "resnet110", "plain20", "plain56", "plain110"):
    PROFILES[_model] = PipelineConfig(profile=_model, pipeline_name=f"cifar10-{_model}",
                                      training=training_config(_model))
# airbench94's recipe (components/training/recipes.py): 94% in about a tenth of the
# full profile's training.
PROFILES["fast"] = PipelineConfig(profile="fast", pipeline_name="cifar10-airbench94",
                                  training=training_config("airbench94"))


class ConfigError(UserError, ValueError):
    """A profile name or override that does not fit the configuration."""


def _convert(text: str, field_type, field_path: str):
    origin = typing.get_origin(field_type)
    args = typing.get_args(field_type)
    if origin is typing.Union and type(None) in args:
        if text.lower() in ("none", "null", ""):
            return None
        field_type = next(arg for arg in args if arg is not type(None))
        origin, args = typing.get_origin(field_type), typing.get_args(field_type)
    if origin in (tuple, typing.Tuple):
        return tuple(_convert(item, args[0], field_path) for item in text.split(",") if item)
    if field_type is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{field_path}: expected true or false, got {text!r}")
    if field_type in (int, float):
        try:
            return field_type(text)
        except ValueError:
            raise ConfigError(f"{field_path}: expected {field_type.__name__}, "
                              f"got {text!r}") from None
    return text


# Settings renamed: the old name is refused with the new one.
RENAMED = {"export": "tflite", "export.tflite_variants": "tflite.variants",
           "export.tflite_max_drop": "tflite.max_drop",
           "export.tflite_representative_images": "tflite.representative_images"}


def _refuse_renamed(key: str) -> None:
    """A renamed section or field is refused with its new name."""
    section = key.split(".")[0]
    if section in RENAMED:
        new_name = RENAMED.get(key, RENAMED[section])
        raise ConfigError(f"{key}: renamed {new_name}"
                          + (f" (--set {new_name}=...)" if "." in new_name else ""))


def _override(config, path: list, text: str, full_path: str):
    hints = typing.get_type_hints(type(config))
    name = path[0]
    if name not in hints or not any(f.name == name for f in dataclasses.fields(config)):
        known = ", ".join(f.name for f in dataclasses.fields(config))
        raise ConfigError(f"{full_path}: unknown setting {name!r} (known here: {known})")
    current = getattr(config, name)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"{full_path}: {name!r} has no sub-settings")
        value = _override(current, path[1:], text, full_path)
    elif dataclasses.is_dataclass(current):
        raise ConfigError(f"{full_path}: {name!r} is a section; set one of its fields")
    else:
        value = _convert(text, hints[name], full_path)
    return dataclasses.replace(config, **{name: value})


def load(profile: str, overrides: Tuple[str, ...] = ()) -> PipelineConfig:
    """The named profile with `section.field=value` overrides applied in order."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
    config = PROFILES[profile]
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep:
            raise ConfigError(f"{override!r}: expected section.field=value")
        key = key.strip()
        _refuse_renamed(key)
        config = _override(config, key.split("."), text.strip(), key)
    _check(config)
    return config


def with_beam_args(config: PipelineConfig, beam_args) -> PipelineConfig:
    """`config` with command-line flags it does not know appended to the Beam
    arguments (`--project=...`, `--temp_location=...`); anything not a flag is an
    error."""
    unknown = [arg for arg in beam_args if not arg.startswith("--")]
    if unknown:
        raise ConfigError(f"unexpected arguments: {' '.join(unknown)}")
    if not beam_args:
        return config
    return dataclasses.replace(config, beam=dataclasses.replace(
        config.beam, extra_args=config.beam.extra_args + tuple(beam_args)))


def _check(config: PipelineConfig) -> None:
    """Every section checks its own fields: a bad value is refused here, when the
    config loads, before any component runs or any folder is written."""
    if config.orchestrator not in ORCHESTRATORS:
        raise ConfigError(f"orchestrator: {config.orchestrator!r} unknown (known: "
                          f"{', '.join(ORCHESTRATORS)})")
    for field in dataclasses.fields(config):
        section = getattr(config, field.name)
        if dataclasses.is_dataclass(section) and (problem := section.problem()):
            raise ConfigError(problem)
