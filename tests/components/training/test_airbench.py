"""airbench94's network, piece by piece, against hand computations and the
original's own numbers (legacy/airbench94.py)."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from components.training.models.airbench import (BN_EPSILON, BN_MOMENTUM, WHITEN_EPSILON,
                                                  DiracTaps, build_airbench94,
                                                  set_whitening, whitening_kernel)
from components.training.models.batch_norm import BatchNorm

# sum(p.numel() for p in make_net().parameters()): every parameter, the frozen
# whitening weight and BatchNorm weights included.
#   whiten 24x3x2x2 + 24; block widths (in, out): (24, 64), (64, 256), (256, 256), each
#   conv1 out x in x 9 + conv2 out x out x 9 + two BatchNorms of 2 x out; linear 256 x 10.
_ORIGINAL_PARAMETERS = (24 * 3 * 4 + 24
                        + sum(o * i * 9 + o * o * 9 + 4 * o
                              for i, o in ((24, 64), (64, 256), (256, 256)))
                        + 256 * 10)


def test_parameter_count_is_the_originals():
    model = build_airbench94()
    batch_norms = [layer for layer in model.layers if isinstance(layer, BatchNorm)]
    frozen_scales = sum(layer.beta.shape[0] for layer in batch_norms)
    whitening_kernel_size = int(np.prod(model.get_layer("whiten").kernel.shape))
    trained = sum(int(np.prod(variable.shape)) for variable in model.trainable_variables)

    assert _ORIGINAL_PARAMETERS == 1_972_792
    assert trained + whitening_kernel_size + frozen_scales == _ORIGINAL_PARAMETERS
    assert len(batch_norms) == 6 and all(not layer.scale for layer in batch_norms)


def test_spatial_sizes_and_the_logit_scale():
    model = build_airbench94()
    sizes = [model.get_layer(name).output.shape[1:3] for name in
             ("whiten", "block1a_pool", "block2a_pool", "block3a_pool", "pool")]
    assert sizes == [(31, 31), (15, 15), (7, 7), (3, 3), (1, 1)]
    features = keras.Model(model.input, model.get_layer("classifier").output)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(model(images), features(images) / 9, rtol=1e-6)


def test_gelu_is_the_exact_form():
    model = build_airbench94()
    values = np.linspace(-3, 3, 13, dtype="float32")
    exact = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in values]
    gelu = model.get_layer("block1a_gelu")
    np.testing.assert_allclose(gelu(values[None]).numpy()[0], exact, rtol=1e-6, atol=1e-7)


def test_whitening_kernel_whitens_the_patches():
    """Each filter projects a 2x2 patch on an eigenvector of the patches' uncentred
    second moment C, scaled by 1/sqrt(eigenvalue + eps): so W^T C W is diagonal with
    eigenvalue / (eigenvalue + eps) for the 12 filters, the same for their negations."""
    rng = np.random.default_rng(1)
    # Correlated channels and neighbours, as images have.
    base = rng.normal(size=(40, 33, 33, 1))
    images = (base[:, 1:, 1:] + base[:, :-1, :-1] + rng.normal(0, 0.3, (40, 32, 32, 3)))
    kernel = whitening_kernel(images.astype("float32"))
    patches = np.stack([images[:, r:r + 31, c:c + 31, :] for r in (0, 1) for c in (0, 1)],
                       axis=3).reshape(-1, 12)
    second_moment = patches.T @ patches / len(patches)
    eigenvalues = np.sort(np.linalg.eigvalsh(second_moment))[::-1]
    filters = kernel.reshape(12, 24).astype("float64")

    whitened = filters.T @ second_moment @ filters
    expected = np.diag(np.tile(eigenvalues / (eigenvalues + WHITEN_EPSILON), 2))
    expected[:12, 12:] = expected[12:, :12] = -np.diag(eigenvalues / (eigenvalues + WHITEN_EPSILON))
    np.testing.assert_allclose(whitened, expected, atol=1e-4)
    assert kernel.shape == (2, 2, 3, 24)

    model = build_airbench94()
    set_whitening(model, images.astype("float32"))
    np.testing.assert_array_equal(model.get_layer("whiten").kernel.numpy(), kernel)
    assert not model.get_layer("whiten").kernel.trainable


def test_conv_kernels_start_with_identity_taps_on_their_first_filters():
    kernel = DiracTaps()((3, 3, 24, 64)).numpy()
    layer = keras.layers.Conv2D(64, 3, padding="same", use_bias=False,
                                kernel_initializer=DiracTaps())
    images = np.random.default_rng(2).normal(size=(2, 8, 8, 24)).astype("float32")
    np.testing.assert_allclose(layer(images).numpy()[..., :24], images, atol=1e-6)
    # The other 40 filters keep PyTorch's default draw: U(-1/sqrt(fan_in), +).
    rest = kernel[..., 24:]
    bound = 1 / math.sqrt(3 * 3 * 24)
    assert np.abs(rest).max() <= bound and rest.std() > bound / 3


def test_batch_norm_has_a_frozen_scale_the_originals_constants_and_one_fused_kernel():
    model = build_airbench94()
    layer = model.get_layer("block2a_bn")
    assert (layer.momentum, layer.epsilon) == (BN_MOMENTUM, BN_EPSILON) == (0.6, 1e-12)
    assert [variable.name for variable in layer.trainable_variables] == ["beta"]

    inputs = np.random.default_rng(3).normal(2.0, 3.0, (16, 7, 7, 256)).astype("float32")
    traced = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
        tf.TensorSpec(inputs.shape, tf.float32))
    assert "FusedBatchNormV3" in {op.type for op in traced.graph.get_operations()}

    layer.beta.assign(np.full(256, 0.5, "float32"))
    outputs = layer(inputs, training=True).numpy()
    mean, variance = inputs.mean(axis=(0, 1, 2)), inputs.var(axis=(0, 1, 2))
    np.testing.assert_allclose(outputs, (inputs - mean) / np.sqrt(variance) + 0.5,
                               atol=1e-4)
    # PyTorch's momentum 0.4: the running mean keeps 0.6 of its old value (0).
    np.testing.assert_allclose(layer.moving_mean.numpy(), 0.4 * mean, rtol=1e-5)
