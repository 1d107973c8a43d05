"""A model to serve and new versions of it, for the serving benchmarks: the smoke
pipeline run on synthetic data, and a version copied in as the Pusher writes one."""

from __future__ import annotations

import os
import shutil
import tempfile

from components.contract import SAVED_MODEL_FILE, WARMUP_REQUESTS_FILE


def push_a_model() -> tuple:
    """(model base path, the run's config, its transform graph directory)."""
    import pipeline_config
    from benchmarks.examplegen_transform import synthesize
    from pipeline import local_runner

    work_dir = tempfile.mkdtemp(prefix="serving-benchmark-")
    synthesize(os.path.join(work_dir, "data"), train_images=160, test_images=32)
    config = pipeline_config.load("smoke", (f"data.data_dir={work_dir}/data",
                                            f"output_dir={work_dir}/out",
                                            "training.epochs=1", "training.batch_size=32"))
    summary = local_runner.run(config)
    return (config.serving_model_base_path, config,
            summary["components"]["Transform"]["outputs"]["transform_graph"])


def push_version(version_dir: str, base_path: str, version: int,
                 with_warmup: bool = True) -> str:
    """Copies a SavedModel to `<base_path>/<version>` as the Pusher does: saved_model.pb
    last, so the server never sees the version half-written. Without `with_warmup`, the
    copy leaves out the warmup file's directory (assets.extra)."""
    target = os.path.join(base_path, str(version))
    left_out = [SAVED_MODEL_FILE] + ([] if with_warmup else
                                     [os.path.dirname(WARMUP_REQUESTS_FILE)])
    shutil.copytree(version_dir, target, ignore=shutil.ignore_patterns(*left_out))
    partial = os.path.join(target, SAVED_MODEL_FILE + ".part")
    shutil.copyfile(os.path.join(version_dir, SAVED_MODEL_FILE), partial)
    os.replace(partial, os.path.join(target, SAVED_MODEL_FILE))
    return target
