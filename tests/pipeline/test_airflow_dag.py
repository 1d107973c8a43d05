"""pipeline/airflow_dag.py under real Airflow 2 (SQLite, a throwaway AIRFLOW_HOME):
the DAG parses with the configured schedule, runs every component, and the model it
trains is blessed and pushed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ml_metadata.metadata_store import metadata_store
from tfx.orchestration import metadata

import pipeline_config
from components.contract import SAVED_MODEL_FILE
from components.data import cifar10_format
from pipeline import airflow_dag
from tests.support.data import REPO_ROOT, write_small_dataset

pytestmark = pytest.mark.slow  # the pipeline under Airflow

pytest.importorskip("airflow", reason="the airflow extra is not installed "
                                      "(make test installs it)")


def _airflow_env(tmp_path, settings) -> dict:
    """Airflow's settings for a throwaway home; `settings` None leaves the DAG's
    settings variable unset."""
    home = tmp_path / "airflow"
    home.mkdir()
    environment = {
        **{key: value for key, value in os.environ.items()
           if key != airflow_dag.SETTINGS_ENV},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        # Importing TFX takes ~30 s here, Airflow's default parse limit.
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
        airflow_dag.PROFILE_ENV: "smoke",
    }
    if settings is not None:
        environment[airflow_dag.SETTINGS_ENV] = settings
    return environment


def test_the_dag_runs_under_airflow_and_pushes_a_blessed_model(tmp_path):
    data_root = tmp_path / "spans"
    write_small_dataset(str(data_root / "span-0"), cifar10_format.PYTHON_LAYOUT,
                        train_sizes=(24,), test_size=12, seed=0)
    write_small_dataset(str(data_root / "span-3"), cifar10_format.PYTHON_LAYOUT,
                        train_sizes=(40,), test_size=20, seed=1)
    output_dir = tmp_path / "out"
    settings = (f"data.data_dir={data_root}; output_dir={output_dir}; training.epochs=1;"
                f"training.batch_size=16\nschedule.cron=30 4 * * 1; schedule.retries=2")
    env = _airflow_env(tmp_path, settings)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                   capture_output=True, cwd=REPO_ROOT, timeout=300)

    worker = subprocess.run([sys.executable, "-m", "tests.support.airflow_worker", "2026-02-02"],
                            env=env, capture_output=True, text=True, cwd=REPO_ROOT,
                            timeout=900)
    assert worker.returncode == 0, worker.stderr[-5000:]
    result = json.loads(worker.stdout.strip().splitlines()[-1])

    assert result["dag_id"] == "cifar10-resnet9-smoke"
    assert result["schedule"] == "30 4 * * 1" and result["catchup"] is False
    assert result["start_date"].startswith("2026-01-01T00:00:00")
    assert result["max_active_runs"] == 1
    tasks = result["tasks"]
    assert {task["retries"] for task in tasks.values()} == {2}
    assert tasks["Trainer"]["upstream"] == ["ImportSchemaGen", "Transform"]
    assert "DataGate" in tasks["Transform"]["upstream"]
    # The span window is read once the DataGate has let this run's span through.
    assert tasks["TrainingSpansResolver"]["upstream"] == ["DataGate"]
    assert result["state"] == "success"
    assert set(result["task_states"].values()) == {"success"}, result["task_states"]

    config = pipeline_config.load("smoke", (f"output_dir={output_dir}",))
    versions = os.listdir(config.serving_model_base_path)
    assert len(versions) == 1 and versions[0].isdigit()
    assert os.path.isfile(os.path.join(config.serving_model_base_path, versions[0],
                                       SAVED_MODEL_FILE))
    store = metadata_store.MetadataStore(
        metadata.sqlite_metadata_connection_config(config.metadata_path))
    # The Evaluator's blessing (threshold) and the RegressionGate's, which the Pusher obeys.
    blessings = {artifact.uri.split("/")[-3]: artifact
                 for artifact in store.get_artifacts_by_type("ModelBlessing")}
    assert set(blessings) == {"Evaluator", "RegressionGate"}
    assert blessings["RegressionGate"].custom_properties["blessed"].int_value == 1
    # The DAG ingests the latest span when it runs (span-3), and trains on it.
    (examples,) = [artifact for artifact in store.get_artifacts_by_type("Examples")
                   if "/Cifar10ExampleGen/" in artifact.uri]
    assert examples.custom_properties["span"].int_value == 3


def test_without_settings_airflow_reports_an_import_error_naming_the_variable(tmp_path):
    """Airflow's parser, given the DAG file itself or a one-line module importing DAG
    from it, shows an import error that names CIFAR10_TFX_SETTINGS, not an empty DAG
    list. Imported anywhere else, the module stays quiet and defines no DAG."""
    env = _airflow_env(tmp_path, settings=None)
    one_liner = tmp_path / "cifar10_dag.py"
    one_liner.write_text("from pipeline.airflow_dag import DAG  # noqa: F401 (for Airflow)\n")
    for dags_file in (os.path.join(REPO_ROOT, "pipeline", "airflow_dag.py"), str(one_liner)):
        parsed = subprocess.run([sys.executable, "-m", "tests.support.airflow_worker",
                                 "--parse-only", dags_file], env=env, capture_output=True,
                                text=True, cwd=REPO_ROOT, timeout=300)
        assert parsed.returncode == 0, parsed.stderr[-3000:]
        result = json.loads(parsed.stdout.strip().splitlines()[-1])
        assert result["dag_ids"] == []
        (error,) = result["import_errors"].values()
        assert f"{airflow_dag.SETTINGS_ENV} is not set" in error, error
    assert "DAG" not in vars(airflow_dag)
