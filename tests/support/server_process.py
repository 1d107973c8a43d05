"""The embedded server as a child process on loopback, on free ports: what tests and
benchmarks start, with `python -m serving serve` exactly as a user runs it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time

from tests.support.data import REPO_ROOT

# The limits the shared test server runs with: small, so that tests reach them fast.
SERVED_LIMITS = {"read_timeout_s": 3, "max_connections": 8, "max_batch_size": 32}


def free_port() -> int:
    """A loopback port free at the time of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def user_environment() -> dict:
    """This process's environment as a user's shell has it: JAX, which some tests
    import, sets TF_CPP_MIN_LOG_LEVEL=1 in the process that imports it."""
    return {name: value for name, value in os.environ.items()
            if name != "TF_CPP_MIN_LOG_LEVEL"}


class EmbeddedServerProcess:

    def __init__(self, model_base_path: str, model_name: str = "cifar10",
                 extra_args: tuple = (), start_timeout_s: float = 180.0):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving", "serve", "--backend", "embedded",
             "--host", "127.0.0.1", "--rest-port", "0", "--grpc-port", "0",
             "--poll-seconds", "0.2", "--model-base-path", model_base_path,
             "--model-name", model_name, *extra_args],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=user_environment())
        self.lines = []
        rest_port = grpc_port = None
        deadline = time.monotonic() + start_timeout_s
        while (rest_port is None or grpc_port is None) and time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if match := re.search(r"REST API at http://127\.0\.0\.1:(\d+)/", line):
                rest_port = int(match[1])
            if match := re.search(r"gRPC API at 127\.0\.0\.1:(\d+)", line):
                grpc_port = int(match[1])
        if rest_port is None or grpc_port is None:
            self.stop()
            raise RuntimeError("the server did not start:\n" + "".join(self.lines))
        self.rest_url = f"http://127.0.0.1:{rest_port}"
        self.grpc_target = f"127.0.0.1:{grpc_port}"
        # Keeps reading, so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


class ProxyProcess:
    """`python -m serving proxy` in front of `backend_url`, on a free loopback port,
    logging every request (or `sampling_rate` of them) to `log_dir`."""

    def __init__(self, backend_url: str, log_dir: str, sampling_rate: float = 1.0,
                 start_timeout_s: float = 120.0):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "serving", "proxy", "--backend", backend_url, "--host",
             "127.0.0.1", "--port", "0", "--log-requests", log_dir,
             "--log-sampling-rate", str(sampling_rate)],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=user_environment())
        self.lines = []
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if match := re.match(r"Proxy at (http://127\.0\.0\.1:\d+) ", line):
                self.url = match[1]
                threading.Thread(target=self._drain, daemon=True).start()
                return
        self.stop()
        raise RuntimeError("the proxy did not start:\n" + "".join(self.lines))

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: it writes what is queued, then exits
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def server_rss_bytes(server: EmbeddedServerProcess) -> int:
    """The server process's resident memory, from /proc."""
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {server.process.pid}")
