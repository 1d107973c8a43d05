"""The recipe as Keras objects, with nothing of TensorFlow: the model with its in-step
augmentation and what it takes from the data, the optimizer with the per-step schedule
and the loss, and the float32 copy that is exported. `train()` builds from here under
the TensorFlow backend, and benchmarks/train_recipe.py under whichever backend the
machine has."""

from __future__ import annotations

import contextlib
import math

import keras
import numpy as np

from components.contract import NUM_CLASSES
from components.training.augment import CifarAugment
from components.training.config import TrainingConfig
from components.training.models import build_model
from components.training.models.airbench import WHITENING_LAYER, set_whitening
from components.training.optimizer import TorchSGD
from components.training.schedule import make_schedule
from components.training.tta import views


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
    """The model with its in-step augmentation layer (inactive outside training). The
    alternating flip is the data's (components/training/dataset.py), not the layer's.
    The weight decay is an L2 penalty in the model for Keras's SGD only."""
    weight_decay = hparams.weight_decay if hparams.optimizer == "sgd" else 0.0
    return build_model(hparams.model, weight_decay, augmentation=CifarAugment(
        pad=hparams.pad, flip=hparams.flip and not hparams.alternating_flip,
        cutout=hparams.cutout, seed=hparams.seed, name="augment"),
        kernel_initializer=hparams.kernel_initializer)


def initialise_from_data(model: keras.Model, hparams: TrainingConfig,
                         train_images: np.ndarray) -> None:
    """What the model takes from its training images before the first step: airbench's
    whitening kernel."""
    if hparams.model == "airbench94":
        set_whitening(model, train_images)


def total_steps(hparams: TrainingConfig, steps_per_epoch: int) -> int:
    """The steps of the whole run: a fraction of an epoch counts up (airbench's
    ceil(9.9 x steps per epoch)); max_steps caps it."""
    steps = math.ceil(hparams.epochs * steps_per_epoch - 1e-9)
    return min(steps, hparams.max_steps) if hparams.max_steps else steps


def make_optimizer(model: keras.Model, hparams: TrainingConfig,
                   steps_per_epoch: int) -> keras.optimizers.Optimizer:
    schedule = make_schedule(hparams.lr_schedule, steps_per_epoch, hparams.lr_knots,
                             hparams.lr_values)
    if hparams.optimizer == "sgd":
        return keras.optimizers.SGD(schedule, momentum=hparams.momentum,
                                    nesterov=hparams.nesterov)
    bias_paths = [layer.beta.path for layer in model.layers
                  if isinstance(layer, keras.layers.BatchNormalization) and layer.center]
    last_steps = {}
    if hparams.model == "airbench94":
        last_steps[model.get_layer(WHITENING_LAYER).bias.path] = round(
            hparams.whiten_bias_epochs * steps_per_epoch)
    optimizer = TorchSGD(schedule, momentum=hparams.momentum, nesterov=hparams.nesterov,
                         coupled_weight_decay=hparams.weight_decay,
                         rate_scales={path: hparams.bias_lr_scale for path in bias_paths},
                         last_steps=last_steps, lookahead_every=hparams.lookahead_every,
                         lookahead_decay=hparams.lookahead_decay,
                         total_steps=total_steps(hparams, steps_per_epoch))
    if hparams.lookahead_every and keras.backend.backend() == "tensorflow":
        # airbench averages its whole state dict, BatchNorm statistics included. Under
        # JAX the optimizer's step cannot write them (a stateless step returns the
        # trained weights only), so there the lookahead covers the trained weights.
        optimizer.track_in_lookahead([
            variable for variable in model.non_trainable_variables
            if "float" in str(variable.dtype)])
    # Built now, outside any compiled step: the averages copy the weights as they are
    # (XLA cannot lift that copy out of the step, as it lifts zero-filled variables).
    optimizer.build(model.trainable_variables)
    return optimizer


def make_loss(hparams: TrainingConfig) -> keras.losses.Loss:
    """Cross-entropy on the logits against integer labels, with label smoothing as
    PyTorch's (the target (1 - e) one-hot + e / classes), per image, then the batch's
    mean or sum."""
    if not hparams.label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction=_REDUCTIONS[hparams.loss_reduction])
    return SmoothedCrossEntropy(hparams.label_smoothing,
                                reduction=_REDUCTIONS[hparams.loss_reduction])


_REDUCTIONS = {"mean": "sum_over_batch_size", "sum": "sum"}


@keras.saving.register_keras_serializable(package="cifar10_tfx")
class SmoothedCrossEntropy(keras.losses.Loss):
    """Keras's label smoothing needs one-hot targets; the labels are class ids."""

    def __init__(self, label_smoothing: float, reduction="sum_over_batch_size",
                 name="smoothed_cross_entropy"):
        super().__init__(reduction=reduction, name=name)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        one_hot = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), [-1]),
                                    NUM_CLASSES, dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            one_hot, y_pred, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def compile_for_training(model: keras.Model, hparams: TrainingConfig, steps_per_epoch: int,
                         jit_compile: bool, steps_per_execution: int) -> None:
    """The recipe's optimizer on its per-step schedule, and its loss. Under a mixed
    policy Keras wraps the optimizer in loss scaling."""
    model.compile(optimizer=make_optimizer(model, hparams, steps_per_epoch),
                  loss=make_loss(hparams),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)


def finish_training(model: keras.Model) -> None:
    """What the recipe does after its last step: the lookahead's averages become the
    model."""
    # Under float16, Keras wraps the optimizer in a LossScaleOptimizer.
    optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    if isinstance(optimizer, TorchSGD):
        optimizer.finish()


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
             tta_flip: bool = False, tta_translate: int = 0,
             batch_size: int = 500) -> float:
    """Top-1 accuracy, of the logits averaged over the test-time views (`tta.views`):
    what the exported model serves."""
    logits = sum(weight * model.predict(view, batch_size=batch_size, verbose=0)
                 for weight, view in views(images, tta_flip, tta_translate))
    return float(np.mean(np.argmax(logits, axis=-1) == labels))
