"""Warm start reads the weights of the model the pipeline pushed, exactly, and refuses
a model of another architecture by name."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from components.contract import MODEL_VARIABLES_KEY
from components.training.augment import CifarAugment
from components.training.models import build_model
from components.training.warm_start import newest_pushed_model, read_weights_from_saved_model


def _warm_start_model(name: str = "resnet9"):
    return build_model(name, 5e-4, augmentation=CifarAugment(pad=4, flip=True, cutout=8))


def test_warm_start_reads_the_pushed_models_weights(pushed_model):
    base_path, version, version_dir = pushed_model
    assert newest_pushed_model(base_path) == version_dir

    model = _warm_start_model()
    weights = read_weights_from_saved_model(model, version_dir)
    # The revived collection: the exported model's variables, in its order.
    saved = [variable.numpy() for variable in
             getattr(tf.saved_model.load(version_dir), MODEL_VARIABLES_KEY)]
    assert len(saved) == len(model.variables) > 0
    for variable, saved_array in zip(model.variables, saved):
        np.testing.assert_array_equal(variable.numpy(), saved_array, err_msg=variable.path)
    for read_array, model_array in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(read_array, model_array)
    # A freshly initialised model differs: the weights did come from the file.
    fresh = _warm_start_model().get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(fresh, weights))

    with pytest.raises(ValueError, match="cannot warm-start .* weights do not fit"):
        read_weights_from_saved_model(_warm_start_model("resnet20"), version_dir)


def test_a_model_exported_before_the_keras_native_augmentation_still_warm_starts(tmp_path):
    """Exports written before the augmentation drew from a keras.random.SeedGenerator
    had a stateless augment layer. Their checkpoint (`model/...` in the SavedModel's
    variables, as the serving module names it) reads into today's model."""
    import keras

    keras.utils.set_random_seed(1)
    earlier = build_model("resnet9", 5e-4, augmentation=keras.layers.Identity(name="augment"))
    saved_model_dir = str(tmp_path / "1")
    tf.train.Checkpoint(model=earlier).write(os.path.join(saved_model_dir, "variables",
                                                          "variables"))
    weights = read_weights_from_saved_model(_warm_start_model(), saved_model_dir)
    for read, written in zip(weights, earlier.get_weights()):
        np.testing.assert_array_equal(read, written)
