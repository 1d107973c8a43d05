"""The Trainer component's entry point: a thin adapter from TFX's FnArgs to `train()`.

It reads the transformed splits, finds the model to warm-start from, trains, writes
`metrics.json` and the curves to the model_run directory, and exports the SavedModel
that embeds the Transform graph and a warmup file of eval images (see
`components.export.saved_model`). Backups are keyed by the input artifacts and the settings, not
by the execution, so that a killed Trainer started again by the orchestrator resumes
from its last finished epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Optional

import tensorflow as tf
import tensorflow_transform as tft

from components import console
from components.export import saved_model, warmup_file
from components.contract import (TRAINING_CURVES_FILE, TRAINING_METRICS_FILE,
                                 WARMUP_REQUESTS_FILE)
from components.training.config import (BACKUP_ROOT_KEY, TRAINING_KEY, WARM_START_FROM_KEY,
                                        TrainingConfig, training_config_from_dict)
from components.training.curves import plot_curves
from components.training.dataset import load_split
from components.training.device import training_setup
from components.training.recipe import float32_copy
from components.training.train import train
from components.training.warm_start import newest_pushed_model


def backup_dir_for(backup_root: str, fn_args, hparams: TrainingConfig,
                   initial_weights_from: Optional[str] = None) -> str:
    """Same inputs and settings -> same directory, across executions of the Trainer."""
    key = json.dumps({"train": sorted(fn_args.train_files),
                      "transform": fn_args.transform_graph_path,
                      "training": dataclasses.asdict(hparams),
                      **({"warm_start": initial_weights_from} if initial_weights_from else {})},
                     sort_keys=True)
    return os.path.join(backup_root, hashlib.sha256(key.encode()).hexdigest()[:16])


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    custom_config = fn_args.custom_config or {}
    hparams = training_config_from_dict(custom_config.get(TRAINING_KEY, {}))
    setup = training_setup(hparams)  # before any TensorFlow op runs
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train_data = load_split(fn_args.train_files, tft_output)
    eval_data = load_split(fn_args.eval_files, tft_output)
    backup_root = custom_config.get(BACKUP_ROOT_KEY) or os.path.join(
        fn_args.model_run_dir, "backup")
    warm_start_base_path = custom_config.get(WARM_START_FROM_KEY)
    initial_weights_from = None
    if warm_start_base_path:
        initial_weights_from = newest_pushed_model(warm_start_base_path)
        if initial_weights_from is None:
            console.report(f"Warm start: no model pushed to {warm_start_base_path} yet; "
                            f"training from scratch")
    model, history, metrics = train(hparams, train_data, eval_data, fn_args.model_run_dir,
                                    backup_dir_for(backup_root, fn_args, hparams,
                                                   initial_weights_from),
                                    initial_weights_from=initial_weights_from, setup=setup)
    if not setup.is_chief:
        wait_for_chief_export(fn_args.serving_model_dir)
        return
    metrics["warm_start_from"] = initial_weights_from
    # model_run may be a URI (gs://): written through TensorFlow's filesystems.
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    if history:
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, TRAINING_CURVES_FILE),
                               "wb") as curves_file:
            curves_file.write(plot_curves(history))
    with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, TRAINING_METRICS_FILE),
                           "w") as metrics_file:
        json.dump({**metrics, "history": history}, metrics_file, indent=1)
    console.report(f"Eval accuracy {metrics['eval_accuracy']:.4f}, with TTA "
                    f"{metrics['eval_accuracy_tta_flip']:.4f} ({len(eval_data[1])} images)")
    # The warmup requests are the first eval images, back to the PNGs clients send.
    warmup_pixels = warmup_file.pixels_from_transformed(
        eval_data[0][:max(warmup_file.WARMUP_BATCH_SIZES)], tft_output)
    saved_model.export_serving_model(float32_copy(model, hparams), tft_output,
                                     fn_args.serving_model_dir, tta_flip=hparams.tta_flip,
                                     warmup_images=warmup_file.encode_pngs(warmup_pixels),
                                     tta_translate=hparams.tta_translate)


# How long a non-chief worker waits for the chief's export after their last step.
CHIEF_EXPORT_WAIT_SECONDS = 600


def wait_for_chief_export(serving_model_dir: str,
                          timeout_seconds: float = CHIEF_EXPORT_WAIT_SECONDS) -> None:
    """A non-chief worker writes nothing; it returns once the chief's export has
    reached its warmup file, the last one it writes, because TFX's Trainer executor
    fails on every worker whose serving_model_dir is missing when run_fn returns."""
    deadline = time.monotonic() + timeout_seconds
    exported = os.path.join(serving_model_dir, WARMUP_REQUESTS_FILE)
    while not tf.io.gfile.exists(exported):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the chief did not export to {serving_model_dir} within "
                               f"{timeout_seconds:.0f} s of the last training step")
        time.sleep(1)
    console.report(f"Not the chief: the chief exported to {serving_model_dir}")
