"""The recipe as Keras objects, with nothing of TensorFlow: the model with its in-step
augmentation, SGD with the per-step schedule and the loss, and the float32 copy that is
exported. `train()` builds from here under the TensorFlow backend, and
benchmarks/train_recipe.py under whichever backend the machine has."""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from components.training.augment import CifarAugment
from components.training.config import TrainingConfig
from components.training.models import build_model
from components.training.schedule import make_schedule


@contextlib.contextmanager
def global_dtype_policy(policy: str):
    """Keras's global dtype policy is `policy` inside the block, where models are built
    with it, and what it was before after the block: a model trained in bfloat16 leaves
    no bfloat16 default behind for the next model the process builds."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_training_model(hparams: TrainingConfig) -> keras.Model:
    """The model with its in-step augmentation layer (inactive outside training)."""
    return build_model(hparams.model, hparams.weight_decay, augmentation=CifarAugment(
        pad=hparams.pad, flip=hparams.flip, cutout=hparams.cutout, seed=hparams.seed,
        name="augment"), kernel_initializer=hparams.kernel_initializer)


def compile_for_training(model: keras.Model, hparams: TrainingConfig, steps_per_epoch: int,
                         jit_compile: bool, steps_per_execution: int) -> None:
    """SGD (momentum, Nesterov) on the per-step schedule; the weight decay is the
    models' L2 penalty. Under a mixed policy Keras wraps SGD in loss scaling."""
    schedule = make_schedule(hparams.lr_schedule, steps_per_epoch, hparams.lr_knots,
                             hparams.lr_values)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule, momentum=hparams.momentum,
                                       nesterov=hparams.nesterov),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], jit_compile=jit_compile,
        steps_per_execution=steps_per_execution)


def float32_copy(model: keras.Model, hparams: TrainingConfig) -> keras.Model:
    """The model in float32 whatever its training policy: what is exported and served.
    Rebuilt with the (inactive) augmentation layer, so that the export has the
    training model's structure and a warm start can read it back."""
    if model.dtype_policy.name == "float32":
        return model
    with global_dtype_policy("float32"):
        float32_model = build_training_model(hparams)
    float32_model.set_weights(model.get_weights())
    return float32_model


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray,
             tta_flip: bool, batch_size: int = 500) -> float:
    """Top-1 accuracy; with tta_flip, of the logits summed over each image and its
    mirror image (what the exported model serves)."""
    logits = model.predict(images, batch_size=batch_size, verbose=0)
    if tta_flip:
        logits = logits + model.predict(images[:, :, ::-1], batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == labels))
