"""Beam's portable job service and an external worker pool, each a process of its own
outside the checkout, as a remote cluster's would be: `python -S` with the
environment's site-packages on PYTHONPATH, so the editable install's .pth is not read
and nothing of this project is importable. Workers start through
`pipeline/beam_worker_boot.py`, which installs what the job stages."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import sys
import sysconfig
import time

from tests.support.data import REPO_ROOT
from tests.support.server_process import free_port, user_environment


def _wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port}")


def worker_environment(folder: str) -> dict:
    return {**user_environment(), "PYTHONPATH": sysconfig.get_paths()["purelib"],
            "TMPDIR": folder}


@contextlib.contextmanager
def portable_cluster(folder: str):
    """Yields the Beam flags that run a pipeline on the cluster (PortableRunner, the job
    endpoint, the EXTERNAL worker pool); `folder` holds the services' log and the
    workers' files."""
    os.makedirs(folder, exist_ok=True)
    environment = worker_environment(folder)
    boot = os.path.join(folder, "boot")
    with open(boot, "w") as script:
        script.write(f"#!/bin/sh\nexec {sys.executable} -S "
                     f"{os.path.join(REPO_ROOT, 'pipeline', 'beam_worker_boot.py')} \"$@\"\n")
    os.chmod(boot, os.stat(boot).st_mode | stat.S_IXUSR)
    job_port, pool_port = free_port(), free_port()
    services = []
    with open(os.path.join(folder, "services.log"), "w") as log:
        try:
            for module, flags in (
                    ("apache_beam.runners.portability.local_job_service_main",
                     [f"--port={job_port}"]),
                    ("apache_beam.runners.worker.worker_pool_main",
                     [f"--service_port={pool_port}", f"--container_executable={boot}"])):
                services.append(subprocess.Popen(
                    [sys.executable, "-S", "-m", module, *flags], cwd=folder,
                    env=environment, stdout=log, stderr=subprocess.STDOUT))
            _wait_for_port(job_port, services[0])
            _wait_for_port(pool_port, services[1])
            yield ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
                   "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}"]
        finally:
            for service in services:
                service.terminate()
                service.wait(timeout=30)
