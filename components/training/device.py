"""Where and how the Trainer computes: GPU or CPU, the Keras dtype policy, XLA and the
tf.distribute strategy, from the `training` settings."""

from __future__ import annotations

import tensorflow as tf


def gpu_available() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def on_gpu_setting(setting: str, name: str) -> bool:
    """An auto | on | off setting: auto means on exactly when a GPU is there."""
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
