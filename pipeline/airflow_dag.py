"""The pipeline as an Airflow 2 DAG, built by TFX's AirflowDagRunner from the same
factory as every other runner.

Put this file (or a one-line module importing `DAG` from it) in Airflow's dags folder,
with the project installed in Airflow's Python (`make setup EXTRAS="--extra airflow"`).
The DAG reads its settings from the environment of the scheduler and workers:

    CIFAR10_TFX_PROFILE   a profile of pipeline_config.py (default: full)
    CIFAR10_TFX_SETTINGS  overrides `section.field=value`, separated by `;` or new
                          lines (a cron expression has spaces); `data.data_dir=...`
                          is required

The schedule (cron expression), start date, retries and catch-up policy are the
profile's `schedule` section. The DAG is parsed long before it runs, so ExampleGen
looks for the latest span when the run starts, and nothing is downloaded or read at
parse time: `data.data_dir` must be a directory (or span root) the workers can read.
"""

from __future__ import annotations

import datetime
import os
import re

from components.cpu_runtime import apply_cpu_training_defaults

# Airflow runs the components in the worker's process; TensorFlow reads these once.
apply_cpu_training_defaults()

import pipeline_config  # noqa: E402

PROFILE_ENV = "CIFAR10_TFX_PROFILE"
SETTINGS_ENV = "CIFAR10_TFX_SETTINGS"


def config_from_environment(environ=os.environ) -> pipeline_config.PipelineConfig:
    overrides = tuple(setting.strip() for setting in re.split(r"[;\n]", environ.get(
        SETTINGS_ENV, "")) if setting.strip())
    config = pipeline_config.load(environ.get(PROFILE_ENV, "full"), overrides)
    if not config.data.data_dir or not os.path.isdir(config.data.data_dir):
        raise pipeline_config.ConfigError(
            f"{SETTINGS_ENV}: data.data_dir must name a CIFAR-10 directory or span root "
            f"the Airflow workers can read (got {config.data.data_dir!r}); the DAG does "
            f"not download at parse time")
    return config


def dag_settings(schedule: pipeline_config.ScheduleConfig) -> dict:
    """Keyword arguments of airflow.models.DAG from the schedule section."""
    start = datetime.date.fromisoformat(schedule.start_date)
    return {
        "schedule": schedule.cron,
        "start_date": datetime.datetime(start.year, start.month, start.day,
                                        tzinfo=datetime.timezone.utc),
        "catchup": schedule.catchup,
        "max_active_runs": schedule.max_active_runs,
        "default_args": {
            "retries": schedule.retries,
            "retry_delay": datetime.timedelta(minutes=schedule.retry_delay_minutes),
        },
    }


def create_dag(config: pipeline_config.PipelineConfig):
    from tfx.orchestration.airflow.airflow_dag_runner import (
        AirflowDagRunner, AirflowPipelineConfig)

    from components import cifar10_source
    from pipeline import local_runner

    data = config.data
    source = cifar10_source.locate(data.data_dir, data.layout)
    tfx_pipeline = local_runner.build_pipeline(config, source, pin_span=False)
    return AirflowDagRunner(AirflowPipelineConfig(
        airflow_dag_config=dag_settings(config.schedule))).run(tfx_pipeline)


# Airflow collects module-level DAG objects. Importing the module elsewhere (tests,
# tools) without the settings does not build one.
if os.environ.get(SETTINGS_ENV) is not None:
    DAG = create_dag(config_from_environment())
