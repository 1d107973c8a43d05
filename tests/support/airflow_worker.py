"""Parses pipeline/airflow_dag.py with Airflow's DagBag and runs the DAG once with
`DAG.test()` (what `airflow dags test` does), in its own process.

Usage: python -m tests.support.airflow_worker LOGICAL_DATE
       python -m tests.support.airflow_worker --parse-only DAGS_FILE
Airflow's settings (AIRFLOW_HOME, its SQLite database) and the DAG's
(CIFAR10_TFX_PROFILE, CIFAR10_TFX_SETTINGS) come from the environment. Prints the
parsed DAG's settings and the run's state as one JSON line; with --parse-only, the
DAG ids and import errors Airflow's parser found in DAGS_FILE.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

from airflow.models import DagBag

from tests.support.data import REPO_ROOT


def parse_only(dags_file: str) -> None:
    dag_bag = DagBag(dags_file, include_examples=False)
    print(json.dumps({"dag_ids": sorted(dag_bag.dag_ids),
                      "import_errors": dag_bag.import_errors}))


def main() -> None:
    if sys.argv[1] == "--parse-only":
        parse_only(sys.argv[2])
        return
    logical_date = datetime.datetime.fromisoformat(sys.argv[1]).replace(
        tzinfo=datetime.timezone.utc)
    dag_bag = DagBag(os.path.join(REPO_ROOT, "pipeline", "airflow_dag.py"),
                     include_examples=False)
    if dag_bag.import_errors:
        raise SystemExit(f"DAG import errors: {dag_bag.import_errors}")
    (dag,) = dag_bag.dags.values()
    tasks = {task.task_id: {"upstream": sorted(task.upstream_task_ids),
                            "retries": task.retries,
                            "retry_delay_s": task.retry_delay.total_seconds()}
             for task in dag.tasks}
    dag_run = dag.test(execution_date=logical_date)
    print(json.dumps({
        "dag_id": dag.dag_id,
        "schedule": dag.schedule_interval,
        "start_date": dag.start_date.isoformat(),
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tasks": tasks,
        "state": str(dag_run.state),
        "task_states": {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()},
    }))


if __name__ == "__main__":
    main()
