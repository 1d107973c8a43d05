"""The Trainer component's entry point: a thin adapter from TFX's FnArgs to `train()`.

It reads the transformed splits, finds the model to warm-start from, trains, writes
`metrics.json` and the curves to the model_run directory, and exports the SavedModel
that embeds the Transform graph and a warmup file of eval images (see
`components.export`). Backups are keyed by the input artifacts and the settings, not
by the execution, so that a killed Trainer started again by the orchestrator resumes
from its last finished epoch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Optional

import tensorflow_transform as tft

from components import export, progress, warmup
from components.contract import TRAINING_CURVES_FILE, TRAINING_METRICS_FILE
from components.training.config import (BACKUP_ROOT_KEY, TRAINING_KEY, WARM_START_FROM_KEY,
                                        TrainingConfig, training_config_from_dict)
from components.training.curves import plot_curves
from components.training.dataset import load_split
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
            progress.report(f"Warm start: no model pushed to {warm_start_base_path} yet; "
                            f"training from scratch")
    model, history, metrics = train(hparams, train_data, eval_data, fn_args.model_run_dir,
                                    backup_dir_for(backup_root, fn_args, hparams,
                                                   initial_weights_from),
                                    initial_weights_from=initial_weights_from)
    metrics["warm_start_from"] = initial_weights_from
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    if history:
        plot_curves(history, os.path.join(fn_args.model_run_dir, TRAINING_CURVES_FILE))
    with open(os.path.join(fn_args.model_run_dir, TRAINING_METRICS_FILE), "w") as metrics_file:
        json.dump({**metrics, "history": history}, metrics_file, indent=1)
    progress.report(f"Eval accuracy {metrics['eval_accuracy']:.4f}, with flip TTA "
                    f"{metrics['eval_accuracy_tta_flip']:.4f} ({len(eval_data[1])} images)")
    # The warmup requests are the first eval images, back to the PNGs clients send.
    warmup_pixels = warmup.pixels_from_transformed(
        eval_data[0][:max(warmup.WARMUP_BATCH_SIZES)], tft_output)
    export.export_serving_model(float32_copy(model, hparams), tft_output,
                                fn_args.serving_model_dir, tta_flip=hparams.tta_flip,
                                warmup_images=warmup.encode_pngs(warmup_pixels))
