"""The fused BatchNorm trains as Keras's BatchNormalization does: same outputs, same
gradients, the same running averages (up to the unbiased variance), and the same
inference path; and its training step really is TensorFlow's fused kernel."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from components.training.models.batch_norm import BatchNorm
from components.training.models.layers import BN_EPSILON, BN_MOMENTUM
from components.training.recipe import global_dtype_policy

SHAPE = (8, 6, 6, 16)  # n = 8 x 6 x 6 = 288 values per channel


def _pair(rng):
    """(fused, Keras's), built on SHAPE with the same random gamma, beta and
    running statistics."""
    layers = [cls(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
              for cls in (BatchNorm, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.build(SHAPE)
    weights = [rng.normal(1.0, 0.3, SHAPE[-1]), rng.normal(0.0, 0.3, SHAPE[-1]),
               rng.normal(0.0, 0.1, SHAPE[-1]), rng.uniform(0.5, 2.0, SHAPE[-1])]
    for layer in layers:
        layer.set_weights([w.astype("float32") for w in weights])
    return layers


def _train_step(layer, inputs, jit_compile: bool = False):
    """(outputs, d outputs-weighted-sum / d inputs, / d gamma, / d beta), the step
    eager or XLA-compiled (the GPU path)."""
    upstream = tf.constant(np.linspace(-1, 1, int(np.prod(SHAPE)), dtype="float32")
                           .reshape(SHAPE))

    @tf.function(jit_compile=jit_compile)
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer(inputs, training=True)
            loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * upstream)
        return [outputs] + tape.gradient(loss, [inputs] + layer.trainable_weights)

    return [value.numpy() for value in step(tf.constant(inputs))]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_training_matches_keras_batch_normalization(jit_compile):
    rng = np.random.default_rng(0)
    fused, reference = _pair(rng)
    initial_variance = reference.moving_variance.numpy().astype("float64")
    inputs = rng.normal(0.5, 2.0, SHAPE).astype("float32")

    for fused_value, reference_value in zip(_train_step(fused, inputs, jit_compile),
                                            _train_step(reference, inputs)):
        np.testing.assert_allclose(fused_value, reference_value, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), reference.moving_mean.numpy(),
                               rtol=1e-5)
    # Keras keeps the biased batch variance, the fused kernel (like PyTorch) the unbiased.
    n = SHAPE[0] * SHAPE[1] * SHAPE[2]
    batch_variance = inputs.astype("float64").var(axis=(0, 1, 2))
    for layer, variance in ((reference, batch_variance),
                            (fused, batch_variance * n / (n - 1))):
        np.testing.assert_allclose(
            layer.moving_variance.numpy(),
            BN_MOMENTUM * initial_variance + (1 - BN_MOMENTUM) * variance, rtol=1e-5)


def test_inference_and_frozen_training_are_keras_batch_normalization():
    rng = np.random.default_rng(1)
    fused, reference = _pair(rng)
    inputs = rng.normal(size=SHAPE).astype("float32")
    np.testing.assert_array_equal(fused(inputs, training=False).numpy(),
                                  reference(inputs, training=False).numpy())
    for layer in (fused, reference):  # fine-tuning: a frozen BatchNorm keeps its averages
        layer.trainable = False
    np.testing.assert_array_equal(fused(inputs, training=True).numpy(),
                                  reference(inputs, training=True).numpy())
    np.testing.assert_array_equal(fused.moving_mean.numpy(), reference.moving_mean.numpy())


def test_training_step_is_one_fused_kernel():
    fused, reference = _pair(np.random.default_rng(2))

    def op_types(layer):
        traced = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
            tf.TensorSpec(SHAPE, tf.float32))
        return {op.type for op in traced.graph.get_operations()}

    assert "FusedBatchNormV3" in op_types(fused)
    assert "FusedBatchNormV3" not in op_types(reference)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_the_compute_dtype_and_float32_statistics(policy):
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=SHAPE).astype("float32")
    with global_dtype_policy(policy):
        fused = BatchNorm(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
    outputs = fused(keras.ops.cast(inputs, fused.compute_dtype), training=True)
    reference = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
    expected = reference(inputs, training=True).numpy()

    assert keras.backend.standardize_dtype(outputs.dtype) == policy.split("_")[1]
    assert fused.moving_mean.dtype == "float32"
    # bfloat16 keeps 8 bits of mantissa: 2**-8 relative, on values of a few units.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(
        keras.ops.cast(outputs, "float32")), expected, atol=0.05)
    np.testing.assert_allclose(fused.moving_mean.numpy(), reference.moving_mean.numpy(),
                               atol=1e-2)
