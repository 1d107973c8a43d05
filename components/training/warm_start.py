"""Warm start: the weights of the last pushed model, read into a fresh training model.

Only the model's weights are read. The exported SavedModel also holds the optimizer
it was trained with; restoring its step counter would shift the new run's
learning-rate schedule.
"""

from __future__ import annotations

import os
from typing import Optional

import keras
import tensorflow as tf

from components.contract import newest_version


def newest_pushed_model(base_path: str) -> Optional[str]:
    """The newest complete version directory under a TF Serving model base path
    (local or remote), or None when nothing was pushed there yet."""
    if not tf.io.gfile.isdir(base_path):
        return None
    return newest_version(base_path, tf.io.gfile.listdir, tf.io.gfile.exists)


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
