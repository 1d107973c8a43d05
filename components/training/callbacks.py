"""Keras callbacks of the training loop: per-epoch progress with an ETA, and a stop
after a set number of optimizer steps."""

from __future__ import annotations

import time
from typing import Optional

import keras

from components import progress


class Progress(keras.callbacks.Callback):
    """One line per epoch with the ETA; on a CPU, an early estimate of the whole run.
    Lines go to `stream` (default: standard output at the time of each line)."""

    def __init__(self, epochs: int, steps_per_epoch: int, batch_size: int,
                 max_steps: Optional[int], warn_cpu: bool, stream=None):
        super().__init__()
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.batch_size, self.max_steps = batch_size, max_steps
        self.warn_cpu, self.stream = warn_cpu, stream
        self._steps_seen = 0

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch
            if epoch:
                progress.report(f"Resuming from epoch {epoch + 1}/{self.epochs} "
                                f"(backup found)", self.stream)
        self.epoch_started = time.monotonic()

    def _total_steps(self) -> int:
        steps = self.epochs * self.steps_per_epoch
        return min(steps, self.max_steps) if self.max_steps else steps

    def on_train_batch_end(self, batch, logs=None):
        if not self.warn_cpu:
            return
        self._steps_seen += 1
        # The first steps include tracing: time steps 3 to 5.
        if self._steps_seen == 2:
            self._calibration_started = time.monotonic()
        elif self._steps_seen == 5:
            seconds_per_step = (time.monotonic() - self._calibration_started) / 3
            total_s = seconds_per_step * self._total_steps()
            progress.report(
                f"WARNING: training on CPU at {self.batch_size / seconds_per_step:.1f} "
                f"images/s; the whole schedule ({self._total_steps()} steps) will take "
                f"about {total_s / 3600:.2f} h. Use a GPU for the full profile.",
                self.stream)
            self.warn_cpu = False

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        now = time.monotonic()
        done = epoch + 1 - self.first_epoch
        remaining = self.epochs - epoch - 1
        eta = (now - self.started) / done * remaining
        learning_rate = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        metrics = " ".join(f"{k}={v:.4f}" for k, v in logs.items()
                           if k in ("loss", "accuracy", "val_loss", "val_accuracy"))
        progress.report(f"epoch {epoch + 1}/{self.epochs} {metrics} lr={learning_rate:.4f} "
                        f"{now - self.epoch_started:.1f}s ETA {eta:.0f}s", self.stream)


class StopAtStep(keras.callbacks.Callback):
    def __init__(self, max_steps: int):
        super().__init__()
        self.max_steps = max_steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.max_steps:
            self.model.stop_training = True
