"""Starts a model server over a TF Serving model base path.

Backends, in the order `auto` tries them:
- `tensorflow_model_server` on PATH: TF Serving itself;
- `docker`, when a Docker daemon answers: the `tensorflow/serving` image;
- `embedded`: this package's server (REST + gRPC, same APIs, see docs/ARCHITECTURE.md), for
  machines without TF Serving.
The two real ones read the model config under the base path (serving/labels.py:
the newest versions, or the labelled ones), polled for changes, and get a generated
batching parameters file.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
from typing import Dict, List, Optional

from components.contract import MODEL_CONFIG_FILE, WARMUP_BATCH_SIZES, WARMUP_REQUESTS_FILE
from serving import labels
from serving.limits import Limits
from serving.metrics import METRICS_PATH

BACKENDS = ("auto", "tensorflow_model_server", "docker", "embedded")
DOCKER_IMAGE = "tensorflow/serving:2.16.1"
BATCHING_CONFIG_FILE = "batching.config"
MONITORING_CONFIG_FILE = "monitoring.config"
# Inside the container. The base path is mounted at its own absolute path, so that the
# model config under it (which names it) reads the same inside and out.
_CONTAINER_CONFIG_DIR = "/config"
_CONTAINER_REST_PORT, _CONTAINER_GRPC_PORT = 8501, 8500


class ServerConfigError(ValueError):
    """A model base path, port or backend the server cannot start with."""


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    model_base_path: str
    model_name: str
    rest_port: int
    grpc_port: int
    host: str = "0.0.0.0"
    # Versions served at once (TF Serving's `latest { num_versions }` policy).
    num_versions: int = 1
    file_system_poll_seconds: float = 1.0
    # What one request or connection may cost the embedded server (serving/limits.py).
    limits: Limits = Limits()
    # Server-side batching of concurrent requests (the real TF Serving backends).
    max_batch_size: int = 64
    batch_timeout_micros: int = 2000
    num_batch_threads: int = os.cpu_count() or 1
    # A sample of the answered requests, with their responses, logged here (embedded
    # server; serving/request_log.py). None: nothing is logged.
    log_requests_dir: Optional[str] = None
    log_sampling_rate: float = 0.1
    log_max_mb: float = 1024.0


def check(settings: ServerSettings) -> None:
    if not os.path.isdir(settings.model_base_path):
        raise ServerConfigError(f"--model-base-path {settings.model_base_path}: not a "
                                f"directory (the Pusher's <serving_model_dir>/<model_name>)")
    if not settings.model_name or "/" in settings.model_name:
        raise ServerConfigError(f"--model-name {settings.model_name!r}: must be a "
                                f"non-empty name without '/'")
    for flag, port in (("--rest-port", settings.rest_port), ("--grpc-port", settings.grpc_port)):
        if not 0 <= port <= 65535:
            raise ServerConfigError(f"{flag} {port}: not a port number")
    if settings.rest_port and settings.rest_port == settings.grpc_port:
        raise ServerConfigError(f"--rest-port and --grpc-port are both {settings.rest_port}")
    if settings.num_versions < 1:
        raise ServerConfigError(f"--num-versions {settings.num_versions}: must be >= 1")
    try:
        settings.limits.check()
    except ValueError as error:
        raise ServerConfigError(f"limits: {error}") from None
    if settings.log_requests_dir is not None:
        from serving.request_log import flags_problem
        problem = flags_problem(settings.log_sampling_rate, settings.log_max_mb)
        if problem:
            raise ServerConfigError(problem)
    # Every exported version's warmup file holds a request of this batch: TF Serving
    # replays it through its batching session, which refuses a batch over
    # max_batch_size, so no version would ever load.
    largest_warmup = max(WARMUP_BATCH_SIZES)
    for size in {settings.max_batch_size, settings.limits.max_batch_size}:
        if size < largest_warmup:
            raise ServerConfigError(
                f"--max-batch-size {size}: below {largest_warmup}, the largest batch in "
                f"the model's warmup file ({WARMUP_REQUESTS_FILE}), which the server "
                f"replays at every load")


def batching_config_text(settings: ServerSettings) -> str:
    # tensorflow.serving.BatchingParameters; its proto is not in tensorflow-serving-api.
    return (f"max_batch_size {{ value: {settings.max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {settings.batch_timeout_micros} }}\n"
            f"num_batch_threads {{ value: {settings.num_batch_threads} }}\n"
            f"max_enqueued_batches {{ value: 1000 }}\n")


def monitoring_config_text() -> str:
    # tensorflow.serving.MonitoringConfig; its proto is not in tensorflow-serving-api.
    # The same path as the embedded server's metrics.
    return f"prometheus_config {{\n  enable: true\n  path: \"{METRICS_PATH}\"\n}}\n"


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True,
                              timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_backend(requested: str) -> tuple:
    """(backend, why) for `requested`, which may be `auto`."""
    if requested != "auto":
        return requested, f"--backend {requested}"
    if shutil.which("tensorflow_model_server"):
        return "tensorflow_model_server", "tensorflow_model_server is on PATH"
    if docker_available():
        return "docker", "a Docker daemon answers"
    return "embedded", ("no tensorflow_model_server on PATH and no Docker daemon: using the "
                        "embedded server (production should run TF Serving itself)")


def config_files(settings: ServerSettings, config_dir: str) -> Dict[str, str]:
    """Path -> text of the files a real TF Serving backend reads: the batching and
    monitoring files in `config_dir`, and the model config under the base path unless
    it holds labels (then it is the operator's, and kept as it is)."""
    try:
        policy = labels.read_policy(settings.model_base_path, settings.model_name)
    except labels.LabelError as error:
        raise ServerConfigError(str(error)) from None
    files = {}
    if policy is None or policy.versions is None:
        files[labels.config_path(settings.model_base_path)] = labels.config_text(
            settings.model_name, os.path.abspath(settings.model_base_path),
            labels.VersionPolicy({}, None), settings.num_versions)
    files[os.path.join(config_dir, BATCHING_CONFIG_FILE)] = batching_config_text(settings)
    files[os.path.join(config_dir, MONITORING_CONFIG_FILE)] = monitoring_config_text()
    return files


def write_config_files(settings: ServerSettings, config_dir: str, backend: str) -> None:
    """Writes `config_files` (the model config atomically: TF Serving polls it)."""
    files = config_files(settings, config_dir)
    model_config = labels.config_path(settings.model_base_path)
    if model_config in files:
        labels.write_policy(settings.model_base_path, settings.model_name,
                            labels.VersionPolicy({}, None), settings.num_versions)
    os.makedirs(config_dir, exist_ok=True)
    for path, text in files.items():
        if path != model_config:
            with open(path, "w") as config_file:
                config_file.write(text)


def server_command(settings: ServerSettings, config_dir: str, backend: str) -> List[str]:
    """The command line of a real TF Serving backend, reading the files written by
    `write_config_files`."""
    base_path = os.path.abspath(settings.model_base_path)
    poll_seconds = max(1, round(settings.file_system_poll_seconds))
    if backend == "tensorflow_model_server":
        config_path, ports = os.path.abspath(config_dir), [
            f"--port={settings.grpc_port}", f"--rest_api_port={settings.rest_port}"]
        prefix = [shutil.which("tensorflow_model_server") or "tensorflow_model_server"]
    elif backend == "docker":
        config_path, ports = _CONTAINER_CONFIG_DIR, [
            f"--port={_CONTAINER_GRPC_PORT}", f"--rest_api_port={_CONTAINER_REST_PORT}"]
        publish_host = "" if settings.host in ("0.0.0.0", "") else f"{settings.host}:"
        prefix = ["docker", "run", "--rm", "--init",
                  "-p", f"{publish_host}{settings.rest_port}:{_CONTAINER_REST_PORT}",
                  "-p", f"{publish_host}{settings.grpc_port}:{_CONTAINER_GRPC_PORT}",
                  "-v", f"{base_path}:{base_path}:ro",
                  "-v", f"{os.path.abspath(config_dir)}:{_CONTAINER_CONFIG_DIR}:ro",
                  "--entrypoint", "tensorflow_model_server", DOCKER_IMAGE]
    else:
        raise ServerConfigError(f"--backend {backend}: not a TF Serving backend")
    return prefix + ports + [
        f"--model_config_file={base_path}/{MODEL_CONFIG_FILE}",
        # Label changes are picked up as often as new versions.
        f"--model_config_file_poll_wait_seconds={poll_seconds}",
        f"--file_system_poll_wait_seconds={poll_seconds}",
        # A label that is new may name a version still loading (at start-up, every one
        # is); moving a label in use still needs a loaded version (serving/labels.py).
        "--allow_version_labels_for_unavailable_models=true",
        "--enable_batching=true",
        f"--batching_parameters_file={config_path}/{BATCHING_CONFIG_FILE}",
        f"--monitoring_config_file={config_path}/{MONITORING_CONFIG_FILE}",
    ]


def run_tf_serving(command: List[str]) -> int:
    """Runs TF Serving in the foreground, passing SIGINT/SIGTERM on."""
    process = subprocess.Popen(command)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: process.send_signal(received))
    return process.wait()


def wait_for_stop_signal() -> None:
    """Returns once the process gets SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    stop.wait()


def run_embedded(settings: ServerSettings) -> int:
    """Serves until SIGINT/SIGTERM; prints where it listens."""
    from serving import quiet_import
    quiet_import.tensorflow()  # before the servers and the model store import it
    from serving import grpc_server, rest_server
    from components.contract import ready_versions
    from serving.metrics import ServerMetrics
    from serving.model_store import ModelStore

    def log(message: str) -> None:
        print(message, flush=True)

    # One set of inference slots for both APIs and the warmup replay: the model's memory
    # is bounded across them.
    slots = settings.limits.inference_slots()
    store = ModelStore(settings.model_name, os.path.abspath(settings.model_base_path),
                       num_versions=settings.num_versions,
                       poll_seconds=settings.file_system_poll_seconds, log=log,
                       inference_slots=slots).start()
    if not ready_versions(store.base_path):
        log(f"No version of {settings.model_name} in {settings.model_base_path} yet; "
            f"waiting for one (a <integer>/saved_model.pb)")
    metrics = ServerMetrics(store)  # both APIs count into it; REST serves it
    requests_log = None
    if settings.log_requests_dir is not None:
        from serving.request_log import RequestLog
        requests_log = RequestLog(settings.log_requests_dir, settings.log_sampling_rate,
                                  int(settings.log_max_mb * 2**20), metrics.registry, log)
        log(f"Logging {requests_log.describe()}")
    rest = rest_server.start(store, settings.host, settings.rest_port, settings.limits, slots,
                             metrics, requests_log)
    grpc, grpc_port = grpc_server.start(store, settings.host, settings.grpc_port,
                                        settings.limits, slots, metrics, requests_log)
    log(f"REST API at http://{settings.host}:{rest.server_port}/v1/models/"
        f"{settings.model_name}")
    log(f"gRPC API at {settings.host}:{grpc_port}")
    log(f"Metrics at http://{settings.host}:{rest.server_port}{METRICS_PATH}")
    wait_for_stop_signal()
    log("Shutting down")
    rest.shutdown()
    grpc.stop(grace=2).wait()
    if requests_log is not None:
        requests_log.close()
    store.stop()
    return 0


def serve(settings: ServerSettings, backend: str = "auto", config_dir: Optional[str] = None,
          dry_run: bool = False) -> int:
    check(settings)
    chosen, why = choose_backend(backend)
    print(f"Backend: {chosen} ({why})", flush=True)
    if settings.log_requests_dir is not None and chosen != "embedded":
        # Open-source TF Serving has no request logger (tensorflow/serving#408, #1846).
        raise ServerConfigError(f"--log-requests: TF Serving ({chosen}) cannot log "
                                f"requests; serve with --backend embedded to log them")
    if chosen == "embedded":
        if dry_run:
            print(f"Would serve {settings.model_base_path} as {settings.model_name} on REST "
                  f"port {settings.rest_port} and gRPC port {settings.grpc_port}")
            return 0
        return run_embedded(settings)
    if not settings.rest_port or not settings.grpc_port:
        raise ServerConfigError("TF Serving needs fixed --rest-port and --grpc-port (not 0)")
    config_dir = config_dir or os.path.join(os.path.abspath(settings.model_base_path),
                                            os.pardir, f".{settings.model_name}-server-config")
    command = server_command(settings, config_dir, chosen)
    if dry_run:  # the operator's base path and config directory are left as they are
        for path, text in config_files(settings, config_dir).items():
            print(f"Would write {os.path.normpath(path)}:\n{text.rstrip()}")
        print("Command: " + " ".join(command), flush=True)
        return 0
    write_config_files(settings, config_dir, chosen)
    print(f"Model config (versions and labels): "
          f"{labels.config_path(os.path.abspath(settings.model_base_path))}", flush=True)
    print(f"Config files in {os.path.normpath(config_dir)}", flush=True)
    print("Command: " + " ".join(command), flush=True)
    sys.stdout.flush()
    return run_tf_serving(command)
