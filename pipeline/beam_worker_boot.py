#!/usr/bin/env python3
"""A Beam Python SDK worker's start-up where Beam's SDK container is not used: what the
container's Go `boot` does, for a worker pool on a machine or VM of its own.

Beam's worker pool (`python -m apache_beam.runners.worker.worker_pool_main
--container_executable <this, made executable>`) runs it once per worker with the
job's endpoints. As `boot` does, it asks the provision service for the job's
pipeline options and dependencies, fetches the staged artifacts from the artifact
service, installs the job's extra packages (the project's wheel that
`pipeline.staging` builds) with pip, `--no-index --no-deps`, into a folder of the
worker's own, and starts the SDK worker with that folder on its path.

Left out against `boot`: a `requirements.txt` or `setup.py` source distribution is
not installed (nothing is downloaded: the worker's environment holds the locked
dependencies already), no pickled main session is loaded (the pipeline's code comes
as a package), and there is no status endpoint or profiling. The worker's folder is
removed when the worker ends. It runs in the worker's Python with nothing of this
project importable, so it imports only Beam and gRPC.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

# Run by path: its own folder must not stand in for installed packages.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

import grpc  # noqa: E402
from apache_beam.portability import common_urns  # noqa: E402
from apache_beam.portability.api import (beam_artifact_api_pb2,  # noqa: E402
                                         beam_artifact_api_pb2_grpc,
                                         beam_provision_api_pb2,
                                         beam_provision_api_pb2_grpc,
                                         beam_runner_api_pb2)
from google.protobuf import json_format, text_format  # noqa: E402

EXTRA_PACKAGES_FILE = "extra_packages.txt"  # apache_beam.runners.portability.stager's


def _staged_name(artifact) -> str:
    if artifact.role_urn != common_urns.artifact_roles.STAGING_TO.urn:
        raise ValueError(f"an artifact with role {artifact.role_urn} is not supported")
    payload = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(
        artifact.role_payload)
    return os.path.basename(payload.staged_name)


def fetch_artifacts(artifact_endpoint: str, dependencies, staged_dir: str,
                    metadata) -> list:
    """Writes each dependency to `staged_dir` under its staged name; returns the names."""
    names = []
    with grpc.insecure_channel(artifact_endpoint) as channel:
        retrieval = beam_artifact_api_pb2_grpc.ArtifactRetrievalServiceStub(channel)
        for artifact in dependencies:
            name = _staged_name(artifact)
            with open(os.path.join(staged_dir, name), "wb") as staged:
                for chunk in retrieval.GetArtifact(
                        beam_artifact_api_pb2.GetArtifactRequest(artifact=artifact),
                        metadata=metadata):
                    staged.write(chunk.data)
            names.append(name)
    return names


def install_extra_packages(staged_dir: str, site_dir: str) -> list:
    """Installs the packages `extra_packages.txt` lists into `site_dir`."""
    listing = os.path.join(staged_dir, EXTRA_PACKAGES_FILE)
    if not os.path.exists(listing):
        return []
    with open(listing) as names:
        packages = [os.path.join(staged_dir, name.strip()) for name in names if name.strip()]
    if packages:
        subprocess.run([sys.executable, *(["-S"] if sys.flags.no_site else []), "-m", "pip",
                        "install", "--quiet", "--no-index", "--no-deps", "--target",
                        site_dir, *packages], check=True)
    return packages


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for endpoint in ("logging", "artifact", "provision", "control"):
        parser.add_argument(f"--{endpoint}_endpoint", required=endpoint != "logging")
    parser.add_argument("--id", required=True)
    parser.add_argument("--semi_persist_dir", default=None)
    args, _ = parser.parse_known_args(argv)
    metadata = [("worker_id", args.id)]
    with grpc.insecure_channel(args.provision_endpoint) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=metadata).info
    work_dir = args.semi_persist_dir or tempfile.mkdtemp(prefix=f"beam-worker-{args.id}-")
    staged_dir, site_dir = os.path.join(work_dir, "staged"), os.path.join(work_dir, "site")
    os.makedirs(staged_dir, exist_ok=True)
    fetch_artifacts(args.artifact_endpoint, info.dependencies, staged_dir, metadata)
    install_extra_packages(staged_dir, site_dir)

    def descriptor(endpoint, url):
        if not endpoint.url and url:
            endpoint.url = url
        return text_format.MessageToString(endpoint)

    environment = {
        **os.environ,
        "WORKER_ID": args.id,
        "PIPELINE_OPTIONS": json.dumps(json_format.MessageToDict(info.pipeline_options)),
        "SEMI_PERSISTENT_DIRECTORY": work_dir,
        "CONTROL_API_SERVICE_DESCRIPTOR": descriptor(info.control_endpoint,
                                                     args.control_endpoint),
        "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities),
        "PYTHONPATH": os.pathsep.join(filter(None, [site_dir,
                                                    os.environ.get("PYTHONPATH")])),
    }
    logging_descriptor = descriptor(info.logging_endpoint, args.logging_endpoint)
    if logging_descriptor.strip():
        environment["LOGGING_API_SERVICE_DESCRIPTOR"] = logging_descriptor
    worker = subprocess.Popen([sys.executable, *(["-S"] if sys.flags.no_site else []),
                               "-m", "apache_beam.runners.worker.sdk_worker_main"],
                              env=environment)
    # The worker pool stops a worker by signalling this process: pass it on, then
    # remove what was fetched and installed for the worker.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: worker.send_signal(received))
    status = worker.wait()
    if not args.semi_persist_dir:
        shutil.rmtree(work_dir, ignore_errors=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
