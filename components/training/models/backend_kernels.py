"""The backend kernels the model code uses where keras.ops has no equivalent: the one
place in the model package that names TensorFlow. Imported only on that backend, so
the model code still builds and trains under JAX (benchmarks/train_recipe.py)."""

from __future__ import annotations

import tensorflow as tf


def fused_batch_norm_training(inputs, gamma, beta, epsilon: float) -> tuple:
    """BatchNorm of an NHWC batch by its own statistics, in one kernel
    (FusedBatchNormV3; with oneDNN on the CPU it takes bfloat16 natively, and XLA
    compiles it): (outputs in the inputs' dtype, batch mean, unbiased batch variance),
    the statistics in float32. Its gradient is the fused FusedBatchNormGradV3."""
    outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        inputs, tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32), epsilon=epsilon,
        data_format="NHWC", is_training=True)
    return outputs, mean, variance
