"""The project's code for Beam workers that are not this machine's processes.

The data steps run the project's own code on Beam's workers: the custom ExampleGen's
executor, the `preprocessing_fn`, the scoring transform. Beam's in-process runner
finds it in this checkout; a remote runner's workers (Dataflow, Flink, Spark, or
any `PortableRunner` job service) do not have it. TFX stages only its own
`tfx_ephemeral` package for a component, and stops doing even that once
`--extra_package`, `--setup_file`, `--requirements_file` or `--sdk_container_image`
is given. So for those runners the project is built as a wheel (pip and setuptools
are in the lock; Beam's `--setup_file` would need the `build` package, which is not)
and staged with `--extra_package`, which every portable worker installs before it
runs (Beam's SDK container's `boot`, or `pipeline/beam_worker_boot.py`). A user who
gives a staging flag or an SDK container image of their own is left to it.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Optional

from components import console
from components.uris import is_uri

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REMOTE_RUNNERS = ("DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner")
# Flags by which a user stages code (or an image holding it) of their own.
STAGING_FLAGS = ("--extra_package", "--extra_packages", "--setup_file",
                 "--requirements_file", "--sdk_container_image",
                 "--worker_harness_container_image")
STAGING_DIR = "staging"  # under the output directory: the wheel each run stages


def needs_staging(runner: str, beam_args) -> bool:
    """Whether a run with `runner` and these Beam flags must ship the project."""
    return runner in REMOTE_RUNNERS and not any(
        arg.split("=", 1)[0] in STAGING_FLAGS for arg in beam_args)


# What the wheel is built from: setuptools reuses a `build/` folder it finds, which
# would put modules deleted since into the wheel, so it builds from a fresh copy.
_SOURCES = ("pyproject.toml", "README.md", "pipeline_config.py", "pipeline", "components",
            "serving")


def build_wheel(dest_dir: str) -> str:
    """Builds the project's wheel from this checkout into `dest_dir`; returns its path."""
    os.makedirs(dest_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest_dir) as building:
        source = os.path.join(building, "source")
        os.makedirs(source)
        for name in _SOURCES:
            if os.path.isdir(os.path.join(REPO_ROOT, name)):
                shutil.copytree(os.path.join(REPO_ROOT, name), os.path.join(source, name),
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(os.path.join(REPO_ROOT, name), os.path.join(source, name))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "--wheel-dir", building, source],
                       check=True, stdout=subprocess.DEVNULL)
        (built,) = glob.glob(os.path.join(building, "*.whl"))
        wheel = os.path.join(dest_dir, os.path.basename(built))
        os.replace(built, wheel)
    return wheel


def staged(config, dest_dir: Optional[str] = None):
    """`config`, with the project's wheel added to the Beam flags when its runner is
    remote and nothing of the user's stages code; the console says so."""
    beam = config.beam
    if not needs_staging(beam.runner, beam.extra_args):
        return config
    wheel = build_wheel(dest_dir or os.path.join(os.path.abspath(config.output_dir),
                                                 STAGING_DIR))
    console.report(f"Staging this project for the {beam.runner} workers: {wheel} "
                    f"(--extra_package)")
    return dataclasses.replace(config, beam=dataclasses.replace(
        beam, extra_args=tuple(beam.extra_args) + (f"--extra_package={wheel}",)))


def dataflow_problem(config, artifact_root: str, data_location: Optional[str],
                     hint: str) -> Optional[str]:
    """Why the config's runner cannot run from this machine, or None: Dataflow's
    workers run elsewhere, so the data they read and the artifacts they read and write
    must be URIs (gs://), not paths on this machine (the metadata store and the run
    lock stay local). `hint`: how this command moves them."""
    if config.beam.runner != "DataflowRunner":
        return None
    local = [f"{what} {location or '(downloaded into the local cache)'}"
             for what, location in (("the artifacts", artifact_root),
                                    ("the data", data_location))
             if not location or not is_uri(location)]
    if not local:
        return None
    return (f"beam.runner DataflowRunner: its workers cannot reach {' nor '.join(local)} "
            f"on this machine; {hint} (docs/ARCHITECTURE.md, \"The code on remote "
            f"workers\")")
