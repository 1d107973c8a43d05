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

from components.training.runtime import prepare_tensorflow

# Airflow runs the components in the worker's process; TensorFlow reads these once.
prepare_tensorflow()

import pipeline_config  # noqa: E402
from components.uris import is_uri  # noqa: E402

PROFILE_ENV = "CIFAR10_TFX_PROFILE"
SETTINGS_ENV = "CIFAR10_TFX_SETTINGS"


def config_from_environment(environ=os.environ) -> pipeline_config.PipelineConfig:
    overrides = tuple(setting.strip() for setting in re.split(r"[;\n]", environ.get(
        SETTINGS_ENV, "")) if setting.strip())
    config = pipeline_config.load(environ.get(PROFILE_ENV, "full"), overrides)
    # A URI is not probed: nothing is read at parse time.
    data_dir = config.data.data_dir
    if not data_dir or not (is_uri(data_dir) or os.path.isdir(data_dir)):
        raise pipeline_config.ConfigError(
            f"{SETTINGS_ENV}: data.data_dir must name a CIFAR-10 directory or span root "
            f"the Airflow workers can read (got {data_dir!r}); the DAG does "
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

    from components.data import source as data_source
    from pipeline.builders import scheduled_pipeline

    source = data_source.locate(config.data.data_dir, config.data.layout)
    return AirflowDagRunner(AirflowPipelineConfig(
        airflow_dag_config=dag_settings(config.schedule))).run(
            scheduled_pipeline(config, source))


def _missing_settings() -> ImportError:
    return ImportError(
        f"{SETTINGS_ENV} is not set in the Airflow scheduler's and workers' environment, "
        f"so no DAG can be built: set it to the pipeline's overrides, at least "
        f"`data.data_dir=<CIFAR-10 directory or span root>` ({PROFILE_ENV} picks the "
        f"profile, default full)")


def parsed_by_airflow(module_name: str = __name__) -> bool:
    """Airflow's DagBag imports each file of the dags folder under a made-up module
    name (`unusual_prefix_<hash>_<file name>`)."""
    return module_name.startswith("unusual_prefix_")


# Airflow collects module-level DAG objects. Without the settings, Airflow's parser
# gets an import error naming the variable (shown in its UI); importing the module
# elsewhere (tests, tools) stays quiet and builds nothing.
if os.environ.get(SETTINGS_ENV) is not None:
    DAG = create_dag(config_from_environment())
elif parsed_by_airflow():
    raise _missing_settings()


def __getattr__(name: str):
    # A one-line dags-folder module (`from pipeline.airflow_dag import DAG`) gets the
    # same named error instead of "cannot import name 'DAG'". So without the settings,
    # `hasattr(module, "DAG")` raises too; look in `vars(module)` instead.
    if name == "DAG":
        raise _missing_settings()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
