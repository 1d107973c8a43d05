"""Each recipe states every recipe field and nothing of the machine's; the profiles
pick them; the fast recipe's loss is PyTorch's label-smoothed cross-entropy, summed."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest

import pipeline_config
from components.training.config import TrainingConfig, training_config
from components.training.recipe import make_loss
from components.training.recipes import AIRBENCH94, RECIPES, RESNET9

_MACHINE_AND_RUN = {"device", "steps_per_execution", "mixed_precision", "xla",
                    "distribution", "eval_every_epoch", "target_accuracy", "seed"}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_recipe_is_every_recipe_field_and_no_machine_field(name):
    recipe_fields = {field.name for field in dataclasses.fields(TrainingConfig)
                     if field.default is dataclasses.MISSING}
    assert set(RECIPES[name]) == recipe_fields
    assert not recipe_fields & _MACHINE_AND_RUN
    assert training_config(name).problem() == ""


def test_profiles_pick_their_recipes():
    assert pipeline_config.load("full").training == training_config("resnet9")
    fast = pipeline_config.load("fast").training
    assert fast == training_config("airbench94") and fast.model == "airbench94"
    assert pipeline_config.load("resnet56").training.model == "resnet56"
    # --set reaches every field, a fraction of an epoch included.
    assert pipeline_config.load("fast", ("training.epochs=12.5",)).training.epochs == 12.5


def test_airbench_rate_and_decay_are_its_per_1024_parametrisation():
    """lr = 11.5 / (1024 (1 + 1 / (1 - 0.85))); PyTorch's weight_decay = wd / lr with
    wd = 0.0153 x 1024 / the same scale."""
    scale = 1024 * (1 + 1 / (1 - 0.85))
    assert math.isclose(AIRBENCH94["lr_values"][1], 11.5 / scale)
    assert math.isclose(AIRBENCH94["weight_decay"] * AIRBENCH94["lr_values"][1],
                        0.0153 * 1024 / scale)
    assert RESNET9["epochs"] == 24 and AIRBENCH94["epochs"] == 9.9


@pytest.mark.parametrize("override, message", [
    ("training.optimizer=adam", "training.optimizer: 'adam' unknown"),
    ("training.model=resnet18", "training.model: 'resnet18' unknown"),
    ("training.loss_reduction=max", "training.loss_reduction: 'max' unknown"),
    ("training.distribution=mirrored", "does not run lookahead or the alternating flip"),
])
def test_bad_recipe_settings_are_refused_at_load(override, message):
    with pytest.raises(pipeline_config.ConfigError, match=message):
        pipeline_config.load("fast", (override,))


def test_the_loss_is_label_smoothed_cross_entropy_summed_over_the_batch():
    logits = np.array([[2.0, 0.5, -1.0] + [0.0] * 7, [0.1] * 10], "float32")
    labels = np.array([0, 3])
    smoothing = AIRBENCH94["label_smoothing"]
    # PyTorch: the target is (1 - e) one-hot + e / classes.
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    targets = np.full((2, 10), smoothing / 10)
    targets[np.arange(2), labels] += 1 - smoothing
    expected = -(targets * log_softmax).sum()
    loss = make_loss(training_config("airbench94"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loss(labels, logits)), expected,
                               rtol=1e-5)
    mean_loss = make_loss(training_config("airbench94", loss_reduction="mean"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(mean_loss(labels, logits)),
                               expected / 2, rtol=1e-5)
