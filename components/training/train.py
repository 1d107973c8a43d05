"""Training ResNet9 (or a deep CIFAR ResNet) on arrays in memory, with nothing of TFX.

`train()` takes the transformed images and labels and the `training` settings, and
trains with Keras `fit` under the configured tf.distribute strategy: augmentation
inside the step, SGD with the per-step learning-rate schedule, the L2 penalty that is
the recipe's weight decay. On a GPU the step is XLA-compiled in mixed float16, and
`steps_per_execution` steps run per host round trip. Per epoch it reports loss,
accuracy, learning rate, the training-only seconds, images/s and an ETA; TensorBoard
logs go to the run directory. A killed run started again with the same backup
directory resumes from its last finished epoch.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Optional

import keras

from components import console
from components.training.callbacks import Progress, RestoreOnly, StopAtStep, TrainingClock
from components.training.config import TrainingConfig
from components.training.dataset import AlternatingFlip, eval_batches, shuffled_batches
from components.training.device import TrainingSetup, describe, training_setup
from components.training.recipe import (accuracy, build_training_model, compile_for_training,
                                        finish_training, global_dtype_policy,
                                        initialise_from_data, total_steps)
from components.training.warm_start import read_weights_from_saved_model


SHARED_SHUFFLE_SEED = 0


def train(hparams: TrainingConfig, train_data: tuple, eval_data: tuple, model_run_dir: str,
          backup_dir: str, stream=None, extra_callbacks=(),
          initial_weights_from: Optional[str] = None,
          setup: Optional[TrainingSetup] = None) -> tuple:
    """Trains; returns (model, history dict, metrics dict). Progress goes to `stream`
    (default: sys.stdout at call time). `initial_weights_from`: a SavedModel this
    Trainer exported, whose weights the model starts from (warm start). `setup`: from
    `training_setup(hparams)`, which a caller that runs TensorFlow ops before training
    must call first (multi-worker training); made here when not given."""
    stream = stream or sys.stdout
    setup = setup or training_setup(hparams)
    on_gpu, policy, xla, strategy = setup.on_gpu, setup.policy, setup.xla, setup.strategy
    if hparams.seed is not None:
        keras.utils.set_random_seed(hparams.seed)
    train_images, train_labels = train_data
    steps_per_epoch = len(train_labels) // hparams.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"train split has {len(train_labels)} images, fewer than one "
                         f"batch of {hparams.batch_size}")
    steps = total_steps(hparams, steps_per_epoch)
    epochs = math.ceil(steps / steps_per_epoch)
    steps_per_execution = hparams.steps_per_execution
    stop_at_step = steps if steps < epochs * steps_per_epoch else None
    if stop_at_step:
        # The stop is checked once per execution: make it land on the last step.
        steps_per_execution = math.gcd(steps_per_execution, stop_at_step, steps_per_epoch)
    if strategy.num_replicas_in_sync > 1:
        # Keras 3.12's multi-step loop fails under MirroredStrategy ("You must feed a
        # value for placeholder tensor 'while/cond/Placeholder_1'"): one step per call.
        steps_per_execution = 1
    device = describe(on_gpu)
    workers = f" x {setup.workers} workers" if setup.workers > 1 else ""
    console.report(
        f"Training {hparams.model} on {len(train_labels)} images: {epochs} epochs x "
        f"{steps_per_epoch} steps of {hparams.batch_size} on "
        f"{strategy.num_replicas_in_sync} {'GPU' if on_gpu else 'CPU'} replica(s) "
        f"({device}{workers}), {policy}, XLA {'on' if xla else 'off'}, "
        f"{steps_per_execution} step(s) per execution", stream)

    with strategy.scope(), global_dtype_policy(policy):
        model = build_training_model(hparams)
        initialise_from_data(model, hparams, train_images)
        if initial_weights_from:
            model.set_weights(read_weights_from_saved_model(build_training_model(hparams),
                                                            initial_weights_from))
            console.report(f"Warm start: weights from {initial_weights_from}", stream)
        compile_for_training(model, hparams, steps_per_epoch, jit_compile=xla,
                             steps_per_execution=steps_per_execution)

    # Keras hands each replica its slice of every global batch; across workers tf.data
    # cuts it the same way (each worker takes its replicas' slices) provided that every
    # worker shuffles the same order, so without training.seed they share a fixed one.
    shuffle_seed = hparams.seed
    if shuffle_seed is None and setup.workers > 1:
        shuffle_seed = SHARED_SHUFFLE_SEED
    alternating_flip = (AlternatingFlip(len(train_labels), hparams.seed)
                        if hparams.flip and hparams.alternating_flip else None)
    train_dataset = shuffled_batches(train_images, train_labels, hparams.batch_size,
                                     seed=shuffle_seed, alternating_flip=alternating_flip)
    eval_dataset = eval_batches(*eval_data)
    clock = TrainingClock(steps_per_epoch, hparams.batch_size, hparams.target_accuracy
                          if hparams.eval_every_epoch else None)
    # Keras 3 has no chief of its own: only the chief writes backups and logs; the other
    # workers of a cluster resume from the chief's backup.
    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch") if setup.is_chief
        else RestoreOnly(backup_dir),
        *([keras.callbacks.TensorBoard(os.path.join(model_run_dir, "logs"),
                                       update_freq="epoch")] if setup.is_chief else []),
        clock,
        Progress(epochs, steps_per_epoch, hparams.batch_size, steps,
                 warn_cpu=not on_gpu, clock=clock, stream=stream),
        *([alternating_flip] if alternating_flip else []),
    ]
    if stop_at_step:
        callbacks.append(StopAtStep(stop_at_step, steps_per_epoch))
    callbacks.extend(extra_callbacks)
    started = time.monotonic()
    # One pass over the indices per epoch: an execution ends where the data does, so
    # steps_per_execution need not divide the epoch (a repeated dataset with
    # steps_per_epoch would let an execution run on into the next epoch).
    history = model.fit(train_dataset, epochs=epochs, verbose=0, callbacks=callbacks,
                        validation_data=eval_dataset if hparams.eval_every_epoch else None)
    train_seconds = time.monotonic() - started
    steps = int(model.optimizer.iterations.numpy())
    finish_training(model)
    if strategy.num_replicas_in_sync > 1:
        model = single_device_copy(model, hparams, policy)

    eval_images, eval_labels = eval_data
    metrics = {
        "eval_accuracy": accuracy(model, eval_images, eval_labels),
        "eval_accuracy_tta_flip": accuracy(model, eval_images, eval_labels, tta_flip=True,
                                           tta_translate=hparams.tta_translate),
        "train_seconds": round(train_seconds, 1),
        **clock.summary(),
        "steps": steps,
        "parameters": model.count_params(),
        "device": device, "dtype_policy": policy, "xla": xla,
        "steps_per_execution": steps_per_execution,
    }
    rate = metrics["images_per_second"]
    console.report(
        f"Trained in {train_seconds:.1f}s: {metrics['train_only_seconds']:.1f}s of training "
        f"steps at {rate or 0:.0f} images/s, compile {metrics['compile_seconds'] or 0:.1f}s",
        stream)
    return model, history.history, metrics


def single_device_copy(model: keras.Model, hparams: TrainingConfig, policy: str) -> keras.Model:
    """The trained model rebuilt outside the strategy: under several replicas predict()
    cuts its input per replica, and across workers gathers the pieces in an order of
    its own. The copy evaluates the whole split in order, the same on every worker,
    and is what gets exported."""
    with global_dtype_policy(policy):
        copy = build_training_model(hparams)
    copy.set_weights(model.get_weights())
    return copy
