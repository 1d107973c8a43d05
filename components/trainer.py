"""The Trainer's run_fn: ResNet9 (or a deep CIFAR ResNet) on the transformed examples.

Reads the Z-scored train and eval splits into memory (50,000 images are 600 MB of
float32), trains with Keras `fit` under the configured tf.distribute strategy, and
exports a SavedModel that embeds the Transform graph (see `components.export`).

Per epoch it prints loss, accuracy, learning rate and an ETA; TensorBoard logs and a
PNG of the curves go to the Trainer's model_run directory. A killed Trainer restarted
with the same inputs resumes from its last finished epoch: the backup directory is
keyed by the input artifacts and the hyperparameters, not by the execution.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from components import export
from components.augment import CifarAugment
from components.models import build_model
from components.schedule import make_schedule
from components.training_config import TrainingConfig, training_config_from_dict
from components.transform import IMAGE_XF_KEY, LABEL_XF_KEY
from serving.model_store import ready_versions


def gpu_available() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def _on_gpu(setting: str, name: str) -> bool:
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"training.{name}: {setting!r} is not auto, on or off")
    return gpu_available() if setting == "auto" else setting == "on"


def dtype_policy(setting: str) -> str:
    """Keras dtype policy for training.mixed_precision."""
    policies = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
    if setting == "auto":
        return "mixed_float16" if gpu_available() else "float32"
    if setting not in policies:
        raise ValueError(f"training.mixed_precision: {setting!r} is not auto, off, float16 "
                         f"or bfloat16")
    return policies[setting]


def make_strategy(name: str) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # MirroredStrategy() takes every GPU, or the one CPU without a GPU; a CPU split
        # into logical devices (tf.config.set_logical_device_configuration) is mirrored
        # across them, which is how the strategy is exercised without GPUs.
        cpus = tf.config.list_logical_devices("CPU")
        if not gpu_available() and len(cpus) > 1:
            return tf.distribute.MirroredStrategy([device.name for device in cpus])
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"training.distribution: {name!r} is not default, mirrored or "
                     f"multi_worker_mirrored")


def load_split(file_patterns, tft_output: tft.TFTransformOutput) -> tuple:
    """All transformed examples of a split -> (float32 [N, 32, 32, 3], int64 [N])."""
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"no transformed examples match {list(file_patterns)}")
    spec = tft_output.transformed_feature_spec()
    dataset = (tf.data.TFRecordDataset(files, compression_type="GZIP")
               .batch(1024)
               .map(lambda records: tf.io.parse_example(records, spec),
                    num_parallel_calls=tf.data.AUTOTUNE))
    images, labels = [], []
    for batch in dataset:
        images.append(batch[IMAGE_XF_KEY].numpy())
        labels.append(batch[LABEL_XF_KEY].numpy().reshape(-1))
    return np.concatenate(images), np.concatenate(labels)


def backup_dir_for(backup_root: str, fn_args, hparams: TrainingConfig,
                   initial_weights_from: Optional[str] = None) -> str:
    """Same inputs and settings -> same directory, across executions of the Trainer."""
    key = json.dumps({"train": sorted(fn_args.train_files),
                      "transform": fn_args.transform_graph_path,
                      "training": dataclasses.asdict(hparams),
                      **({"warm_start": initial_weights_from} if initial_weights_from else {})},
                     sort_keys=True)
    return os.path.join(backup_root, hashlib.sha256(key.encode()).hexdigest()[:16])


class Progress(keras.callbacks.Callback):
    """One line per epoch with the ETA; on a CPU, an early estimate of the whole run."""

    def __init__(self, epochs: int, steps_per_epoch: int, batch_size: int,
                 max_steps: Optional[int], warn_cpu: bool, stream=None):
        super().__init__()
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.batch_size, self.max_steps = batch_size, max_steps
        self.warn_cpu, self.stream = warn_cpu, stream or sys.stdout
        self._steps_seen = 0

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()
        self.first_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch
            if epoch:
                print(f"Resuming from epoch {epoch + 1}/{self.epochs} (backup found)",
                      file=self.stream, flush=True)
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
            print(f"WARNING: training on CPU at {self.batch_size / seconds_per_step:.1f} "
                  f"images/s; the whole schedule ({self._total_steps()} steps) will take "
                  f"about {total_s / 3600:.2f} h. Use a GPU for the full profile.",
                  file=self.stream, flush=True)
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
        print(f"epoch {epoch + 1}/{self.epochs} {metrics} lr={learning_rate:.4f} "
              f"{now - self.epoch_started:.1f}s ETA {eta:.0f}s", file=self.stream, flush=True)


class StopAtStep(keras.callbacks.Callback):
    def __init__(self, max_steps: int):
        super().__init__()
        self.max_steps = max_steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.max_steps:
            self.model.stop_training = True


def plot_curves(history: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (("loss", loss_axis), ("accuracy", accuracy_axis)):
        for prefix, label in (("", "train"), ("val_", "eval")):
            values = history.get(prefix + key)
            if values:
                axis.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


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


def newest_version(base_path: str) -> Optional[str]:
    """The newest complete version directory under a TF Serving model base path."""
    if not tf.io.gfile.isdir(base_path):
        return None
    versions = ready_versions(base_path, tf.io.gfile.listdir, tf.io.gfile.exists)
    return versions[max(versions)] if versions else None


def read_weights_from_saved_model(model: keras.Model, saved_model_dir: str) -> list:
    """The weights of the Keras model inside a SavedModel this Trainer exported (the
    `model` attribute of the serving module), read through `model`, a fresh model of
    the same architecture; returns them as `model.get_weights()` lists them.

    The SavedModel's variables are a checkpoint of the serving module, so weights are
    matched by their place in the model, not by name; another architecture fails with
    the mismatch named. `model` must be a throwaway: the checkpoint also holds the old
    optimizer, which a later `compile` of `model` would pick up (its step count would
    shift the learning-rate schedule).
    """
    checkpoint_path = os.path.join(saved_model_dir, "variables", "variables")
    # Shapes first: a failed read leaves pending restores that TF logs one by one.
    saved_shapes = sorted(
        tuple(shape) for key, shape in
        tf.train.load_checkpoint(checkpoint_path).get_variable_to_shape_map().items()
        if key.startswith("model/") and "/optimizer/" not in key
        and key.endswith("VARIABLE_VALUE"))
    model_shapes = sorted(tuple(weight.shape) for weight in model.weights)
    if saved_shapes != model_shapes:
        raise ValueError(f"{saved_model_dir}: cannot warm-start a {model.name} from this "
                         f"model, its weights do not fit ({len(saved_shapes)} saved "
                         f"weights, {len(model_shapes)} in the model, or other shapes)")
    checkpoint = tf.train.Checkpoint(model=model)
    try:
        status = checkpoint.read(checkpoint_path)
        status.expect_partial()
        status.assert_existing_objects_matched()
        return model.get_weights()
    except (AssertionError, ValueError) as error:
        raise ValueError(f"{saved_model_dir}: cannot warm-start a {model.name} from this "
                         f"model, its weights do not fit ({str(error)[:300]})") from None


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
    xla = _on_gpu(hparams.xla, "xla")
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
    print(f"Training {hparams.model} on {len(train_labels)} images: {epochs} epochs x "
          f"{steps_per_epoch} steps of {hparams.batch_size} on "
          f"{strategy.num_replicas_in_sync} {'GPU' if on_gpu else 'CPU'} replica(s), "
          f"{policy}, XLA {'on' if xla else 'off'}",
          file=stream, flush=True)

    with strategy.scope():
        model = build_training_model(hparams)
        if initial_weights_from:
            model.set_weights(read_weights_from_saved_model(build_training_model(hparams),
                                                            initial_weights_from))
            print(f"Warm start: weights from {initial_weights_from}", file=stream,
                  flush=True)
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


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    custom_config = fn_args.custom_config or {}
    hparams = training_config_from_dict(custom_config.get("training", {}))
    tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
    train_data = load_split(fn_args.train_files, tft_output)
    eval_data = load_split(fn_args.eval_files, tft_output)
    backup_root = custom_config.get("backup_root") or os.path.join(
        fn_args.model_run_dir, "backup")
    warm_start_base_path = custom_config.get("warm_start_from")
    initial_weights_from = None
    if warm_start_base_path:
        initial_weights_from = newest_version(warm_start_base_path)
        if initial_weights_from is None:
            print(f"Warm start: no model pushed to {warm_start_base_path} yet; training "
                  f"from scratch", flush=True)
    model, history, metrics = train(hparams, train_data, eval_data, fn_args.model_run_dir,
                                    backup_dir_for(backup_root, fn_args, hparams,
                                                   initial_weights_from),
                                    initial_weights_from=initial_weights_from)
    metrics["warm_start_from"] = initial_weights_from
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    if history:
        plot_curves(history, os.path.join(fn_args.model_run_dir, "curves.png"))
    with open(os.path.join(fn_args.model_run_dir, "metrics.json"), "w") as metrics_file:
        json.dump({**metrics, "history": history}, metrics_file, indent=1)
    print(f"Eval accuracy {metrics['eval_accuracy']:.4f}, with flip TTA "
          f"{metrics['eval_accuracy_tta_flip']:.4f} ({len(eval_data[1])} images)", flush=True)
    if model.dtype_policy.name != "float32":
        # Serve in float32 whatever the training policy: rebuild and copy the weights.
        keras.mixed_precision.set_global_policy("float32")
        # With the (inactive) augmentation layer, so that the export has the training
        # model's structure and a warm start can read it back.
        float32_model = build_training_model(hparams)
        float32_model.set_weights(model.get_weights())
        model = float32_model
    export.export_serving_model(model, tft_output, fn_args.serving_model_dir,
                                tta_flip=hparams.tta_flip)
