"""The Trainer's run_fn under TFX's executor across two worker processes
(MultiWorkerMirroredStrategy over loopback, TF_CONFIG), against MirroredStrategy over
two logical CPUs of one process, on the smoke run's Transform output."""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import numpy as np
from tfx.utils import path_utils

from components.contract import TRAINING_METRICS_FILE, WARMUP_REQUESTS_FILE
from tests.support.server_process import free_port
from tests.support.trainer_worker import finish_trainer, start_trainer


def test_two_workers_train_as_mirrored_over_two_cpus_and_only_the_chief_writes(
        pipeline_run, tmp_path):
    config, summary = pipeline_run
    transform = summary["components"]["Transform"]["outputs"]
    # Float32 on both sides (auto could time bfloat16 in one process and not the other);
    # a seed so that both shuffle and augment alike.
    training = dataclasses.replace(config.training, mixed_precision="off", seed=0)

    def settings(output: str, model_run: str, distribution: str, mirrored_cpus=0) -> dict:
        return {"transformed_examples": transform["transformed_examples"],
                "transform_graph": transform["transform_graph"],
                "model": os.path.join(output, "model"),
                "model_run": os.path.join(output, model_run),
                "backup_root": os.path.join(output, "backup"),
                "training": dataclasses.asdict(
                    dataclasses.replace(training, distribution=distribution)),
                "mirrored_cpus": mirrored_cpus}

    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    shared = str(tmp_path / "workers")
    # As on Vertex, every worker gets the same model and backup locations; each its own
    # model_run location here, to show which writes there.
    workers = [start_trainer(settings(shared, f"model_run-{index}", "multi_worker_mirrored"),
                              str(tmp_path / f"worker-{index}"),
                              {"cluster": cluster, "task": {"type": "worker", "index": index}})
               for index in range(2)]
    chief_output, other_output = [finish_trainer(worker) for worker in workers]
    mirrored_output = finish_trainer(start_trainer(
        settings(str(tmp_path / "mirrored"), "model_run", "mirrored", mirrored_cpus=2),
        str(tmp_path / "mirrored-trainer")))

    assert "2 CPU replica(s) (CPU x 2 workers)" in chief_output, chief_output[-3000:]
    assert "2 CPU replica(s) (CPU)" in mirrored_output, mirrored_output[-3000:]
    assert "Not the chief: the chief exported to" in other_output, other_output[-3000:]

    # Only the chief wrote: the non-chief's model_run was never made, the TensorBoard
    # logs are the chief's process's, and the export is whole; the finished run removed
    # its backup.
    assert not os.path.exists(os.path.join(shared, "model_run-1"))
    event_files = glob.glob(os.path.join(shared, "model_run-0", "logs", "*", "events.*"))
    assert event_files and all(f".{workers[0].pid}." in os.path.basename(path)
                               for path in event_files), event_files
    serving_dir = path_utils.serving_model_dir(os.path.join(shared, "model"))
    assert os.path.exists(os.path.join(serving_dir, WARMUP_REQUESTS_FILE))
    assert not glob.glob(os.path.join(shared, "backup", "**", "*.h5"), recursive=True)

    def metrics(model_run_dir: str) -> dict:
        with open(os.path.join(model_run_dir, TRAINING_METRICS_FILE)) as metrics_file:
            return json.load(metrics_file)

    by_workers = metrics(os.path.join(shared, "model_run-0"))
    by_devices = metrics(str(tmp_path / "mirrored" / "model_run"))
    # Same global batch, cut the same way (each replica its half of every batch), the
    # same per-replica BatchNorm and the same mean of two gradients: the same steps, up
    # to the order of floating-point sums inside the kernels.
    assert by_workers["steps"] == by_devices["steps"] > 0
    for name in ("loss", "accuracy"):
        np.testing.assert_allclose(by_workers["history"][name], by_devices["history"][name],
                                   rtol=1e-5, err_msg=name)
    eval_images = 30
    assert abs(by_workers["eval_accuracy"] - by_devices["eval_accuracy"]) <= 1 / eval_images
