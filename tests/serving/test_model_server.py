"""Backend choice and the real TF Serving configuration (the files are parsed back with
TF Serving's own protos and the command line is checked; a dry run writes nothing)."""

from __future__ import annotations

import os
import subprocess
import sys

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.contract import MODEL_CONFIG_FILE, WARMUP_BATCH_SIZES, WARMUP_REQUESTS_FILE
from serving import model_server
from serving.limits import Limits
from tests.support.data import REPO_ROOT


def _settings(base_path, **changes):
    return model_server.ServerSettings(model_base_path=str(base_path), model_name="cifar10",
                                       rest_port=8501, grpc_port=8500, **changes)


def _model_config(base_path) -> model_server_config_pb2.ModelServerConfig:
    with open(os.path.join(base_path, MODEL_CONFIG_FILE)) as config_file:
        return text_format.Parse(config_file.read(), model_server_config_pb2.ModelServerConfig())


def test_tf_serving_binary_config_and_command(tmp_path):
    base_path = tmp_path / "models" / "cifar10"
    base_path.mkdir(parents=True)
    settings = _settings(base_path, num_versions=2, max_batch_size=32)
    config_dir = tmp_path / "config"
    model_server.write_config_files(settings, str(config_dir), "tensorflow_model_server")
    (model,) = _model_config(base_path).model_config_list.config
    assert (model.name, model.base_path, model.model_platform) == (
        "cifar10", str(base_path), "tensorflow")
    assert model.model_version_policy.latest.num_versions == 2
    batching = (config_dir / model_server.BATCHING_CONFIG_FILE).read_text()
    assert "max_batch_size { value: 32 }" in batching
    command = model_server.server_command(settings, str(config_dir), "tensorflow_model_server")
    assert command[0].endswith("tensorflow_model_server")
    assert {"--port=8500", "--rest_api_port=8501", "--enable_batching=true",
            f"--model_config_file={base_path}/{MODEL_CONFIG_FILE}",
            f"--batching_parameters_file={config_dir}/batching.config"} <= set(command)


def test_docker_mounts_the_base_path_where_the_config_points(tmp_path):
    base_path = tmp_path / "cifar10"
    base_path.mkdir()
    settings = _settings(base_path, host="127.0.0.1")
    model_server.write_config_files(settings, str(tmp_path / "config"), "docker")
    (model,) = _model_config(base_path).model_config_list.config
    command = model_server.server_command(settings, str(tmp_path / "config"), "docker")
    assert command[:2] == ["docker", "run"] and model_server.DOCKER_IMAGE in command
    assert f"{base_path}:{model.base_path}:ro" in command
    assert "127.0.0.1:8501:8501" in command and "127.0.0.1:8500:8500" in command
    assert f"--model_config_file={model.base_path}/{MODEL_CONFIG_FILE}" in command
    assert "--batching_parameters_file=/config/batching.config" in command


def test_auto_falls_back_to_the_embedded_server_only_without_tf_serving():
    backend, why = model_server.choose_backend("auto")
    if backend == "embedded":
        assert "no tensorflow_model_server on PATH and no Docker daemon" in why
    else:
        assert backend in ("tensorflow_model_server", "docker")


def test_dry_run_prints_the_command_and_bad_arguments_exit_2(tmp_path):
    base_path = tmp_path / "cifar10"
    base_path.mkdir()
    dry = subprocess.run(
        [sys.executable, "-m", "serving", "serve", "--backend", "tensorflow_model_server",
         "--model-base-path", str(base_path), "--config-dir", str(tmp_path / "config"),
         "--dry-run"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    assert "Command: " in dry.stdout and "--rest_api_port=8501" in dry.stdout
    # Nothing written: the config files are printed, the model config as TF Serving
    # would read it.
    assert sorted(os.listdir(tmp_path)) == ["cifar10"] and os.listdir(base_path) == []
    printed = dry.stdout.split(f"Would write {base_path / MODEL_CONFIG_FILE}:\n")[1]
    config = text_format.Parse(printed.split("Would write ")[0],
                               model_server_config_pb2.ModelServerConfig())
    assert config.model_config_list.config[0].model_version_policy.latest.num_versions == 1
    assert f"Would write {tmp_path / 'config' / model_server.BATCHING_CONFIG_FILE}:\n" \
        "max_batch_size { value: 64 }" in dry.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "serving", "serve", "--model-base-path",
         str(tmp_path / "absent"), "--dry-run"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2
    assert "--model-base-path" in missing.stderr and "not a directory" in missing.stderr
    same_ports = subprocess.run(
        [sys.executable, "-m", "serving", "serve", "--model-base-path", str(base_path),
         "--rest-port", "9000", "--grpc-port", "9000", "--dry-run"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert same_ports.returncode == 2 and "both 9000" in same_ports.stderr


def test_a_max_batch_size_below_the_warmup_batch_is_refused(tmp_path):
    base_path = tmp_path / "cifar10"
    base_path.mkdir()
    largest = max(WARMUP_BATCH_SIZES)
    small = subprocess.run(
        [sys.executable, "-m", "serving", "serve", "--backend", "tensorflow_model_server",
         "--model-base-path", str(base_path), "--config-dir", str(tmp_path / "config"),
         "--max-batch-size", str(largest - 1), "--dry-run"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert small.returncode == 2
    assert f"--max-batch-size {largest - 1}: below {largest}" in small.stderr
    assert WARMUP_REQUESTS_FILE in small.stderr
    assert os.listdir(base_path) == [] and not (tmp_path / "config").exists()
    # The flag is also TF Serving's batching max_batch_size.
    settings = _settings(base_path, max_batch_size=largest,
                         limits=Limits(max_batch_size=largest))
    model_server.check(settings)
    files = model_server.config_files(settings, str(tmp_path / "config"))
    assert f"max_batch_size {{ value: {largest} }}" in files[
        str(tmp_path / "config" / model_server.BATCHING_CONFIG_FILE)]
