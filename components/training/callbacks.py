"""Keras callbacks of the training loop: the training clock, per-epoch progress with an
ETA, and a stop after a set number of optimizer steps.

None of them reads a tensor per step. Keras calls `on_train_batch_end` once per
execution (`steps_per_execution` steps), with the step index as a Python int, and
hands the logs over as Python numbers: the callback list has already waited for the
device to finish that execution, which is the sync the clock times against. The index
it passes is the execution's last step as if it were full (Keras 3.12 does not clip it
to the epoch), so the callbacks clip it to the steps per epoch.
"""

from __future__ import annotations

import time
from typing import Optional

import keras

from components import console


class TrainingClock(keras.callbacks.Callback):
    """Training-only seconds per epoch, apart from compilation, evaluation and
    checkpoints, and the time at which the eval accuracy first reaches `target`.

    The first execution of the first `fit` traces and compiles the step (XLA
    included): its duration is `compile_seconds`, and the first epoch is timed from
    its end. A clock passed to several `fit` calls of one model (one epoch each) times
    them as one run.
    """

    def __init__(self, steps_per_epoch: int, batch_size: int,
                 target_accuracy: Optional[float]):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.batch_size, self.target_accuracy = batch_size, target_accuracy
        self.compile_seconds: Optional[float] = None
        self.epoch_seconds: list = []  # training only; None when nothing was timed
        self.epoch_steps: list = []  # the steps those seconds cover
        self.target_reached: Optional[dict] = None
        self.fit_started: Optional[float] = None

    def on_train_begin(self, logs=None):
        if self.fit_started is None:
            self.fit_started = time.monotonic()
        self._compiling = self.compile_seconds is None

    def on_epoch_begin(self, epoch, logs=None):
        self._timed_from = time.monotonic()
        self._first_timed_step = 0
        self._last_step: Optional[int] = None
        self._timed_until = self._timed_from

    def on_train_batch_begin(self, batch, logs=None):
        if self._compiling:
            self._compile_started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        batch = min(batch, self.steps_per_epoch - 1)
        if self._compiling:
            self._compiling = False
            self.compile_seconds = now - self._compile_started
            self._timed_from, self._first_timed_step = now, batch + 1
            return
        self._timed_until, self._last_step = now, batch

    def on_epoch_end(self, epoch, logs=None):
        steps, seconds = self.timed_so_far()
        self.epoch_steps.append(steps)
        self.epoch_seconds.append(seconds if steps else None)
        accuracy = (logs or {}).get("val_accuracy")
        if (self.target_reached is None and self.target_accuracy is not None
                and accuracy is not None and accuracy >= self.target_accuracy):
            self.target_reached = {
                "target": self.target_accuracy, "epoch": epoch + 1,
                "eval_accuracy": round(float(accuracy), 4),
                "train_seconds": round(self.train_seconds(), 2),
                "wall_seconds": round(time.monotonic() - self.fit_started, 2)}

    def timed_so_far(self) -> tuple:
        """(steps, seconds) timed in the current epoch up to the last execution."""
        if self._last_step is None:
            return 0, 0.0
        return self._last_step + 1 - self._first_timed_step, self._timed_until - self._timed_from

    def train_seconds(self) -> float:
        return sum(seconds for seconds in self.epoch_seconds if seconds)

    def images_per_second(self, epoch: Optional[int] = None) -> Optional[float]:
        """Over one epoch (an index into this fit's epochs) or all timed steps."""
        if epoch is None:
            steps, seconds = sum(self.epoch_steps), self.train_seconds()
        else:
            steps, seconds = self.epoch_steps[epoch], self.epoch_seconds[epoch]
        return steps * self.batch_size / seconds if steps and seconds else None

    def summary(self) -> dict:
        """The figures metrics.json keeps."""
        rate = self.images_per_second()
        return {
            "compile_seconds": None if self.compile_seconds is None else round(
                self.compile_seconds, 2),
            "epoch_train_seconds": [None if s is None else round(s, 3)
                                    for s in self.epoch_seconds],
            "epoch_steps": list(self.epoch_steps),
            "train_only_seconds": round(self.train_seconds(), 2),
            "images_per_second": None if rate is None else round(rate, 1),
            "time_to_target": self.target_reached,
        }


class Progress(keras.callbacks.Callback):
    """One line per epoch with its training-only time, images/s and the ETA; on a CPU,
    an early estimate of the whole run. Lines go to `stream` (default: standard output
    at the time of each line). `clock` must come before it in the callback list."""

    def __init__(self, epochs: int, steps_per_epoch: int, batch_size: int,
                 max_steps: Optional[int], warn_cpu: bool, clock: TrainingClock,
                 stream=None):
        super().__init__()
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.batch_size, self.max_steps = batch_size, max_steps
        self.warn_cpu, self.clock, self.stream = warn_cpu, clock, stream
        self.started: Optional[float] = None
        self.first_epoch: Optional[int] = None

    def on_train_begin(self, logs=None):
        # Once per object: several one-epoch fits of one run report as one.
        if self.started is None:
            self.started = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch
            if epoch:
                console.report(f"Resuming from epoch {epoch + 1}/{self.epochs} "
                                f"(backup found)", self.stream)
        self.epoch_started = time.monotonic()

    def _total_steps(self) -> int:
        steps = self.epochs * self.steps_per_epoch
        return min(steps, self.max_steps) if self.max_steps else steps

    def _warn_cpu_time(self, images_per_second: Optional[float]) -> None:
        if not self.warn_cpu or not images_per_second:
            return
        total_s = self._total_steps() * self.batch_size / images_per_second
        console.report(
            f"WARNING: training on CPU at {images_per_second:.1f} images/s; the whole "
            f"schedule ({self._total_steps()} steps) will take about {total_s / 3600:.2f} "
            f"h. Use a GPU for the full profile.", self.stream)
        self.warn_cpu = False

    def on_train_batch_end(self, batch, logs=None):
        # As soon as a few steps after the compilation are timed.
        steps, seconds = self.clock.timed_so_far()
        if steps >= 3:
            self._warn_cpu_time(steps * self.batch_size / seconds)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        # This epoch's figures, just recorded by the clock.
        rate = self.clock.images_per_second(len(self.clock.epoch_seconds) - 1)
        # An epoch of one execution gives no earlier chance.
        self._warn_cpu_time(rate)
        now = time.monotonic()
        done = epoch + 1 - self.first_epoch
        remaining = self.epochs - epoch - 1
        eta = (now - self.started) / done * remaining
        learning_rate = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        metrics = " ".join(f"{k}={v:.4f}" for k, v in logs.items()
                           if k in ("loss", "accuracy", "val_loss", "val_accuracy"))
        timing = (f"train {self.clock.epoch_seconds[-1]:.2f}s {rate:.0f} img/s" if rate
                  else "train n/a")
        if done == 1 and self.clock.compile_seconds is not None:
            timing += f" (+ compile {self.clock.compile_seconds:.1f}s)"
        console.report(f"epoch {epoch + 1}/{self.epochs} {metrics} lr={learning_rate:.4f} "
                        f"{timing}, epoch {now - self.epoch_started:.1f}s ETA {eta:.0f}s",
                        self.stream)
        reached = self.clock.target_reached
        if reached and reached["epoch"] == epoch + 1:
            console.report(
                f"Eval accuracy reached {reached['target']:.4f} at epoch {reached['epoch']}: "
                f"{reached['train_seconds']:.1f}s of training, {reached['wall_seconds']:.1f}s "
                f"since the start", self.stream)


class StopAtStep(keras.callbacks.Callback):
    """Stops once `max_steps` optimizer steps are done, counted from the epoch and
    step indices Keras passes (no read of the step variable). Exact when
    steps_per_execution divides max_steps and the epoch's steps (train() sees to it)."""

    def __init__(self, max_steps: int, steps_per_epoch: int):
        super().__init__()
        self.max_steps, self.steps_per_epoch = max_steps, steps_per_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        steps_this_epoch = min(batch + 1, self.steps_per_epoch)
        if self._epoch * self.steps_per_epoch + steps_this_epoch >= self.max_steps:
            self.model.stop_training = True


class RestoreOnly(keras.callbacks.BackupAndRestore):
    """A non-chief worker's BackupAndRestore: it resumes from the chief's backup, and
    neither writes nor removes it (the chief holds the same weights and does both)."""

    def __init__(self, backup_dir: str):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=False)

    def _save_model(self):
        pass
