"""What a remote Beam runner's workers are sent (pipeline/staging.py), offline: the
project's wheel, holding every file the code reads at run time, added for each remote
runner unless the user stages code of their own; nothing added for the in-process
runner."""

from __future__ import annotations

import dataclasses
import os
import zipfile

import pytest

import pipeline_config
from components import uris
from pipeline import staging


@pytest.mark.parametrize("runner, user_args, staged", [
    ("DataflowRunner", ("--project=p", "--region=r", "--temp_location=gs://b/t"), True),
    ("FlinkRunner", ("--flink_master=flink:8081",), True),
    ("SparkRunner", ("--spark_master_url=spark://m:7077",), True),
    ("PortableRunner", ("--job_endpoint=localhost:8099",), True),
    ("FnApiRunner", (), False),
    ("DirectRunner", (), False),
    ("DataflowRunner", ("--sdk_container_image=gcr.io/p/cifar10-tfx:1",), False),
    ("FlinkRunner", ("--extra_package=/tmp/mine.whl",), False),
    ("SparkRunner", ("--setup_file", "./setup.py"), False),
    ("PortableRunner", ("--requirements_file=r.txt",), False),
])
def test_each_remote_runner_gets_the_project_unless_the_user_ships_code(runner, user_args,
                                                                        staged):
    assert staging.needs_staging(runner, user_args) == staged


def test_a_remote_run_s_beam_flags_name_the_wheel_after_the_user_s(tmp_path, capsys):
    user_args = ("--project=p", "--region=r", "--temp_location=gs://b/t")
    config = pipeline_config.load("smoke", (f"output_dir={tmp_path}",))
    config = dataclasses.replace(config, beam=dataclasses.replace(
        config.beam, runner="DataflowRunner", extra_args=user_args))
    args = staging.staged(config).beam.pipeline_args()
    wheel = os.path.join(tmp_path, staging.STAGING_DIR, "cifar10_tfx-0.1.0-py3-none-any.whl")
    assert args == ["--runner=DataflowRunner", *user_args, f"--extra_package={wheel}"]
    assert os.path.isfile(wheel)
    assert f"Staging this project for the DataflowRunner workers: {wheel}" in \
        capsys.readouterr().out
    local = pipeline_config.load("smoke", (f"output_dir={tmp_path / 'local'}",))
    assert staging.staged(local) is local and not os.path.exists(tmp_path / "local")


def test_the_wheel_holds_what_the_code_reads_at_run_time(tmp_path):
    with zipfile.ZipFile(staging.build_wheel(str(tmp_path))) as wheel:
        names = set(wheel.namelist())
    assert {"pipeline_config.py", "components/validation/schema.pbtxt",
            "components/transform/preprocessing.py", "components/data/example_gen.py",
            "pipeline/report/templates/index.html.j2", "serving/request_log.py"} <= names
    assert not any(name.startswith("tests/") for name in names)


def test_dataflow_with_local_artifacts_or_data_is_refused_before_anything_is_written(
        tmp_path, capsys):
    """Dataflow's workers cannot reach paths on this machine: refused at start, exit 2,
    naming what is local and how to move it, nothing written."""
    import importlib

    cli = importlib.import_module("pipeline.__main__")
    data_dir = str(tmp_path / "data")
    status = cli.main(["run", "--profile", "smoke", "--output-dir", str(tmp_path / "out"),
                       "--data-dir", data_dir, "--runner=DataflowRunner", "--project=p",
                       "--region=r"])
    err = capsys.readouterr().err
    assert status == 2 and "beam.runner DataflowRunner: its workers cannot reach the " \
        f"artifacts {tmp_path / 'out' / 'pipeline_root'}" in err
    assert f"nor the data {data_dir} on this machine" in err
    assert "--set artifacts_dir=gs://" in err

    status = cli.main(["run", "--profile", "smoke", "--output-dir", str(tmp_path / "out"),
                       "--set", "artifacts_dir=gs://bucket/root", "--data-dir", data_dir,
                       "--runner=DataflowRunner", "--project=p", "--region=r"])
    err = capsys.readouterr().err
    assert status == 2 and f"cannot reach the data {data_dir} on this machine" in err
    assert "reach the artifacts" not in err

    status = cli.main(["score", "--output-dir", str(tmp_path / "out"), "--data-dir",
                       "gs://bucket/images", "--runner=DataflowRunner"])
    err = capsys.readouterr().err
    assert status == 2 and "score keeps its artifacts on this machine" in err
    assert not (tmp_path / "out").exists()


def test_dataflow_with_artifacts_and_data_on_gcs_passes_the_start_check():
    config = pipeline_config.with_beam_args(pipeline_config.load("smoke", (
        "artifacts_dir=gs://bucket/root", "data.data_dir=gs://bucket/cifar10")),
        ["--runner=DataflowRunner", "--project=p", "--region=r"])
    assert config.pipeline_root == "gs://bucket/root/cifar10-resnet9-smoke"
    assert staging.dataflow_problem(config, config.pipeline_root, config.data.data_dir,
                                    hint="") is None
    # The metadata store and the run lock stay on this machine.
    assert not uris.is_uri(config.metadata_path)
