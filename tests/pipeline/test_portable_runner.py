"""The data steps on Beam's portable runner, with a job service and a worker pool in
processes of their own whose Python cannot import this project: the code reaches the
workers only as the run stages it (`--extra_package`, added by the CLI), as it reaches
Dataflow's, Flink's or Spark's workers. The workers start through
`pipeline/beam_worker_boot.py` in place of Beam's container `boot`. The artifacts
equal those of the in-process runner on the same data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from components.data.split_files import split_records, split_statistics
from components.transform.preprocessing import channel_statistics
from tests.support.beam_cluster import portable_cluster, worker_environment
from tests.support.data import REPO_ROOT
from tests.support.server_process import user_environment

pytestmark = pytest.mark.slow


def test_the_data_steps_run_on_portable_workers_that_get_the_project_staged(
        pipeline_run, tmp_path):
    config, local = pipeline_run
    folder = str(tmp_path / "cluster")
    with portable_cluster(folder) as beam_flags:
        without = subprocess.run([sys.executable, "-S", "-c", "import components"],
                                 cwd=folder, env=worker_environment(folder),
                                 capture_output=True, text=True)
        assert "No module named 'components'" in without.stderr
        run = subprocess.run(
            [sys.executable, "-m", "pipeline", "run", "--profile", "smoke", "--data-dir",
             config.data.data_dir, "--output-dir", str(tmp_path / "out"), "--set",
             f"data.images_per_file={config.data.images_per_file}", "--to-node",
             "Transform", *beam_flags],
            cwd=REPO_ROOT, env=user_environment(), capture_output=True, text=True,
            timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Staging this project for the PortableRunner workers" in run.stdout
    portable = json.loads(run.stdout.strip().splitlines()[-1])["components"]
    local = local["components"]

    def outputs(summary, component, key):
        return summary[component]["outputs"][key]

    for split in ("train", "test"):
        counts = [sum(1 for _ in split_records(outputs(summary, "Cifar10ExampleGen",
                                                       "examples"), split))
                  for summary in (local, portable)]
        assert counts[0] == counts[1] > 0, (split, counts)
        statistics = [split_statistics(outputs(summary, "StatisticsGen", "statistics"),
                                       split).datasets[0] for summary in (local, portable)]
        assert statistics[0].num_examples == statistics[1].num_examples
        label = [next(feature.num_stats for feature in found.features
                      if feature.path.step == ["label"]) for found in statistics]
        assert (label[0].min, label[0].max, label[0].num_zeros) == (
            label[1].min, label[1].max, label[1].num_zeros)
        assert (label[0].mean, label[0].std_dev) == pytest.approx((label[1].mean,
                                                                   label[1].std_dev))
        transformed = [sum(1 for _ in split_records(outputs(summary, "Transform",
                                                            "transformed_examples"), split))
                       for summary in (local, portable)]
        assert transformed == counts
    np.testing.assert_allclose(
        channel_statistics(outputs(portable, "Transform", "transform_graph")),
        channel_statistics(outputs(local, "Transform", "transform_graph")), rtol=1e-6)
