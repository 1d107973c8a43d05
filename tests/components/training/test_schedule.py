"""The learning-rate schedule and the weight-decay formulation."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import pipeline_config
from components.training.schedule import PiecewiseLinear, make_schedule

STEPS_PER_EPOCH = 50_000 // 512  # 97: the last partial batch is dropped


def test_full_profile_rate_at_the_knots():
    training = pipeline_config.load("full").training
    schedule = make_schedule(training.lr_schedule, STEPS_PER_EPOCH, training.lr_knots,
                             training.lr_values)
    # cifar10-fast's dawn.py: PiecewiseLinear([0, 5, 24], [0, 0.4, 0]), from 0.
    assert float(schedule(0)) == 0.0
    assert float(schedule(1)) == pytest.approx(0.4 / (5 * STEPS_PER_EPOCH), rel=1e-5)
    assert float(schedule(5 * STEPS_PER_EPOCH)) == pytest.approx(0.4)
    assert float(schedule(24 * STEPS_PER_EPOCH)) == 0.0
    # Linear per step in between, not stepped per epoch.
    step = int(2.5 * STEPS_PER_EPOCH) + 3
    assert float(schedule(step)) == pytest.approx(schedule.numpy(step), rel=1e-5)
    assert float(schedule(step + 1)) > float(schedule(step))


def test_the_optimizer_reads_the_schedule_by_its_step_counter():
    schedule = PiecewiseLinear([0, 10, 20], [0.0, 1.0, 0.0])
    optimizer = keras.optimizers.SGD(schedule)
    optimizer.build([keras.Variable(1.0)])
    optimizer.iterations.assign(15)
    assert float(optimizer.learning_rate) == pytest.approx(0.5)


def test_he_et_al_step_schedule():
    training = pipeline_config.load("resnet56").training
    schedule = make_schedule(training.lr_schedule, 390, training.lr_knots, training.lr_values)
    assert [float(schedule(s)) for s in (0, 31_999, 32_001, 48_001, 63_999)] == \
        pytest.approx([0.1, 0.1, 0.01, 0.001, 0.001])
    assert training.max_steps == 64_000 and training.batch_size == 128


def test_l2_penalty_on_the_mean_loss_is_coupled_weight_decay_5e4():
    """Keras SGD(nesterov) with L2(2.5e-4) on every weight == the original's SGD with
    weight_decay=5e-4 added to the gradient before momentum (PyTorch's formula)."""
    weight_decay, learning_rate, momentum = 5e-4, 0.1, 0.9
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(16, 5)).astype(np.float32)
    labels = rng.integers(0, 3, 16)

    def make(regularizer):
        return keras.Sequential([
            keras.Input((5,)),
            keras.layers.Dense(4, kernel_regularizer=regularizer, bias_regularizer=regularizer),
            keras.layers.BatchNormalization(gamma_regularizer=regularizer,
                                            beta_regularizer=regularizer),
            keras.layers.Dense(3, kernel_regularizer=regularizer, bias_regularizer=regularizer)])

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    keras_model = make(keras.regularizers.L2(weight_decay / 2))
    plain_model = make(None)
    plain_model.set_weights(keras_model.get_weights())
    optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=True)

    reference = [w.numpy().astype(np.float64) for w in plain_model.trainable_weights]
    buffers = [np.zeros_like(w) for w in reference]
    for _ in range(4):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, keras_model(inputs, training=True)) + tf.add_n(
                keras_model.losses)
        optimizer.apply_gradients(zip(tape.gradient(loss, keras_model.trainable_weights),
                                      keras_model.trainable_weights))
        for variable, value in zip(plain_model.trainable_weights, reference):
            variable.assign(value.astype(np.float32))
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, plain_model(inputs, training=True))
        gradients = tape.gradient(loss, plain_model.trainable_weights)
        for index, gradient in enumerate(gradients):
            decayed = gradient.numpy() + weight_decay * reference[index]
            buffers[index] = momentum * buffers[index] + decayed
            reference[index] = reference[index] - learning_rate * (
                decayed + momentum * buffers[index])

    for variable, expected in zip(keras_model.trainable_weights, reference):
        np.testing.assert_allclose(variable.numpy(), expected, rtol=2e-5, atol=1e-7)
    # And the decay is not negligible at this scale: without it the weights differ.
    assert any(np.abs(w.numpy() - p.numpy()).max() > 1e-6
               for w, p in zip(keras_model.trainable_weights, plain_model.trainable_weights))
