"""Training ResNet9 (or a deep CIFAR ResNet) on arrays in memory, with nothing of TFX.

`train()` takes the transformed images and labels and the `training` settings, and
trains with Keras `fit` under the configured tf.distribute strategy: augmentation
inside the step, SGD with the per-step learning-rate schedule, the L2 penalty that is
the recipe's weight decay. Per epoch it reports loss, accuracy, learning rate and an
ETA; TensorBoard logs go to the run directory. A killed run started again with the
same backup directory resumes from its last finished epoch.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from components import progress
from components.training.augment import CifarAugment
from components.training.callbacks import Progress, StopAtStep
from components.training.config import TrainingConfig
from components.training.device import dtype_policy, gpu_available, make_strategy, on_gpu_setting
from components.training.models import build_model
from components.training.schedule import make_schedule
from components.training.warm_start import read_weights_from_saved_model


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray,
             tta_flip: bool, batch_size: int = 500) -> float:
    logits = model.predict(images, batch_size=batch_size, verbose=0)
    if tta_flip:
        logits = logits + model.predict(images[:, :, ::-1], batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def build_training_model(hparams: TrainingConfig) -> keras.Model:
    """The model with its in-step augmentation layer (inactive outside training)."""
    return build_model(hparams.model, hparams.weight_decay, augmentation=CifarAugment(
        pad=hparams.pad, flip=hparams.flip, cutout=hparams.cutout, name="augment"))


def train(hparams: TrainingConfig, train_data: tuple, eval_data: tuple, model_run_dir: str,
          backup_dir: str, stream=None, extra_callbacks=(),
          initial_weights_from: Optional[str] = None) -> tuple:
    """Trains; returns (model, history dict, metrics dict). Progress goes to `stream`
    (default: sys.stdout at call time). `initial_weights_from`: a SavedModel this
    Trainer exported, whose weights the model starts from (warm start)."""
    stream = stream or sys.stdout
    if hparams.seed is not None:
        keras.utils.set_random_seed(hparams.seed)
    on_gpu = gpu_available()
    policy = dtype_policy(hparams.mixed_precision)
    xla = on_gpu_setting(hparams.xla, "xla")
    keras.mixed_precision.set_global_policy(policy)
    strategy = make_strategy(hparams.distribution)
    train_images, train_labels = train_data
    steps_per_epoch = len(train_labels) // hparams.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"train split has {len(train_labels)} images, fewer than one "
                         f"batch of {hparams.batch_size}")
    epochs = hparams.epochs
    if hparams.max_steps:
        epochs = min(epochs, math.ceil(hparams.max_steps / steps_per_epoch))
    progress.report(
        f"Training {hparams.model} on {len(train_labels)} images: {epochs} epochs x "
        f"{steps_per_epoch} steps of {hparams.batch_size} on "
        f"{strategy.num_replicas_in_sync} {'GPU' if on_gpu else 'CPU'} replica(s), "
        f"{policy}, XLA {'on' if xla else 'off'}", stream)

    with strategy.scope():
        model = build_training_model(hparams)
        if initial_weights_from:
            model.set_weights(read_weights_from_saved_model(build_training_model(hparams),
                                                            initial_weights_from))
            progress.report(f"Warm start: weights from {initial_weights_from}", stream)
        schedule = make_schedule(hparams.lr_schedule, steps_per_epoch, hparams.lr_knots,
                                 hparams.lr_values)
        model.compile(
            optimizer=keras.optimizers.SGD(schedule, momentum=hparams.momentum,
                                           nesterov=hparams.nesterov),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"], jit_compile=xla)

    train_dataset = (tf.data.Dataset.from_tensor_slices(train_data)
                     .shuffle(len(train_labels), seed=hparams.seed,
                              reshuffle_each_iteration=True)
                     .batch(hparams.batch_size, drop_remainder=True)
                     .prefetch(tf.data.AUTOTUNE))
    eval_dataset = tf.data.Dataset.from_tensor_slices(eval_data).batch(500)
    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch"),
        keras.callbacks.TensorBoard(os.path.join(model_run_dir, "logs"), update_freq="epoch"),
        Progress(epochs, steps_per_epoch, hparams.batch_size, hparams.max_steps,
                 warn_cpu=not on_gpu, stream=stream),
    ]
    if hparams.max_steps:
        callbacks.append(StopAtStep(hparams.max_steps))
    callbacks.extend(extra_callbacks)
    started = time.monotonic()
    history = model.fit(train_dataset, epochs=epochs, verbose=0, callbacks=callbacks,
                        validation_data=eval_dataset if hparams.eval_every_epoch else None)
    train_seconds = time.monotonic() - started

    eval_images, eval_labels = eval_data
    metrics = {
        "eval_accuracy": accuracy(model, eval_images, eval_labels, tta_flip=False),
        "eval_accuracy_tta_flip": accuracy(model, eval_images, eval_labels, tta_flip=True),
        "train_seconds": round(train_seconds, 1),
        "steps": int(model.optimizer.iterations.numpy()),
        "parameters": model.count_params(),
    }
    return model, history.history, metrics


def float32_copy(model: keras.Model, hparams: TrainingConfig) -> keras.Model:
    """The model in float32 whatever its training policy: what is exported and served.
    Rebuilt with the (inactive) augmentation layer, so that the export has the
    training model's structure and a warm start can read it back."""
    if model.dtype_policy.name == "float32":
        return model
    keras.mixed_precision.set_global_policy("float32")
    float32_model = build_training_model(hparams)
    float32_model.set_weights(model.get_weights())
    return float32_model
