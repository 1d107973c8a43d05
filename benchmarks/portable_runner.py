"""How long the data steps take on Beam's portable runner with workers of their own
(the job service and worker pool of tests/support/beam_cluster.py, the project staged
as a wheel) against the in-process runner with the same parallelism, on the same data.

Runs `python -m pipeline run --profile full --to-node Transform` twice, one after the
other: FnApiRunner in multi_processing mode with N workers, then PortableRunner with
`--sdk_worker_parallelism=N`; prints each Beam component's seconds and the ratios,
then one JSON line.

Usage: python benchmarks/portable_runner.py --data-dir D [--parallelism 2]
(D: an official layout, e.g. ../shared/cifar10-full/to_python_layout.py's output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support.beam_cluster import portable_cluster  # noqa: E402
from tests.support.data import REPO_ROOT  # noqa: E402
from tests.support.server_process import user_environment  # noqa: E402

BEAM_COMPONENTS = ("Cifar10ExampleGen", "StatisticsGen", "Transform")


def data_steps(data_dir: str, output_dir: str, beam_flags: list) -> dict:
    """Component -> seconds of one run up to Transform, and the whole run's wall time."""
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", "--profile", "full", "--data-dir",
         data_dir, "--output-dir", output_dir, "--to-node", "Transform", *beam_flags],
        cwd=REPO_ROOT, env=user_environment(), capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(run.stdout[-3000:] + run.stderr[-3000:])
    components = json.loads(run.stdout.strip().splitlines()[-1])["components"]
    return {**{name: components[name]["seconds"] for name in BEAM_COMPONENTS},
            "whole run": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--parallelism", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="portable-bench-") as work:
        in_process = data_steps(args.data_dir, os.path.join(work, "in-process"), [
            "--set", "beam.direct_running_mode=multi_processing",
            "--set", f"beam.direct_num_workers={args.parallelism}"])
        with portable_cluster(os.path.join(work, "cluster")) as beam_flags:
            portable = data_steps(args.data_dir, os.path.join(work, "portable"), [
                *beam_flags, f"--sdk_worker_parallelism={args.parallelism}"])
    print(f"{'step':<20} {'in-process s':>13} {'portable s':>11} {'ratio':>6}")
    for name in in_process:
        print(f"{name:<20} {in_process[name]:>13.1f} {portable[name]:>11.1f} "
              f"{portable[name] / in_process[name]:>6.2f}")
    print(json.dumps({"machine": platform.machine(), "cpus": os.cpu_count(),
                      "parallelism": args.parallelism, "in_process": in_process,
                      "portable": portable}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
