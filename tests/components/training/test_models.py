"""Architecture of ResNet9 and of the deep CIFAR ResNets."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from components.training.models import build_model
from components.training.models.resnet9 import LOGIT_SCALE


def _layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def test_resnet9_layer_sequence_and_settings():
    model = build_model("resnet9", 5e-4)
    convs = _layers_of(model, keras.layers.Conv2D)
    assert [c.filters for c in convs] == [64, 128, 128, 128, 256, 512, 512, 512]
    for conv in convs:
        assert conv.kernel_size == (3, 3) and conv.strides == (1, 1)
        assert conv.padding == "same" and not conv.use_bias
        assert conv.kernel_regularizer is not None
    norms = _layers_of(model, keras.layers.BatchNormalization)
    assert len(norms) == 8
    for norm in norms:
        assert norm.epsilon == 1e-5 and norm.momentum == 0.9
        np.testing.assert_array_equal(norm.gamma.numpy(), 1.0)
        np.testing.assert_array_equal(norm.beta.numpy(), 0.0)
        assert norm.gamma_regularizer is not None and norm.beta_regularizer is not None
    assert [p.pool_size for p in _layers_of(model, keras.layers.MaxPooling2D)] == [(2, 2)] * 3
    assert len(_layers_of(model, keras.layers.Add)) == 2
    assert len(_layers_of(model, keras.layers.GlobalMaxPooling2D)) == 1
    dense = _layers_of(model, keras.layers.Dense)
    assert len(dense) == 1 and dense[0].units == 10 and not dense[0].use_bias
    # Residual adds are not followed by a ReLU: each add feeds a conv or the pool.
    for add in _layers_of(model, keras.layers.Add):
        following = [layer for layer in model.layers
                     if any(node.parent_nodes and add in
                            [n.operation for n in node.parent_nodes]
                            for node in layer._inbound_nodes)]
        assert not any(isinstance(layer, keras.layers.ReLU) for layer in following)


def _fan_in(kernel) -> int:
    return int(np.prod(kernel.shape[:-1]))  # 3 x 3 x input channels, or the inputs


@pytest.mark.parametrize("initializer, variance", [
    ("torch_default", lambda fan_in: 1 / (3 * fan_in)),  # PyTorch's kaiming_uniform_(a=sqrt(5))
    ("he_uniform", lambda fan_in: 2 / fan_in),
])
def test_resnet9_kernels_start_with_the_initialisers_variance(initializer, variance):
    keras.utils.set_random_seed(0)
    model = build_model("resnet9", 5e-4, kernel_initializer=initializer)
    kernels = [layer.kernel for layer in _layers_of(model, keras.layers.Conv2D)
               + _layers_of(model, keras.layers.Dense)]
    assert len(kernels) == 9
    for kernel in kernels:
        values = np.asarray(kernel).ravel()
        expected = np.sqrt(variance(_fan_in(kernel)))
        # A uniform's sample standard deviation: relative error ~ 0.63 / sqrt(n); the
        # smallest kernel (prep, 1,728 values) stays within 6% at 4 sigma, and the
        # other initialiser is off by a factor sqrt(6).
        assert np.std(values) == pytest.approx(expected, rel=4 * 0.63 / np.sqrt(values.size)
                                               + 0.005), kernel.path
        # Uniform on [-limit, limit] with limit = sqrt(3 variance).
        assert np.abs(values).max() <= np.sqrt(3 * variance(_fan_in(kernel))) + 1e-6
    norms = _layers_of(model, keras.layers.BatchNormalization)
    for norm in norms:
        np.testing.assert_array_equal(norm.gamma.numpy(), 1.0)
        np.testing.assert_array_equal(norm.beta.numpy(), 0.0)


def test_an_unknown_initialiser_is_named():
    with pytest.raises(ValueError, match="kernel initializer 'glorot'"):
        build_model("resnet9", 5e-4, kernel_initializer="glorot")


def test_resnet9_parameter_count():
    assert build_model("resnet9", 5e-4).count_params() == 6_577_600


def test_resnet9_logits_are_the_dense_output_scaled():
    model = build_model("resnet9", 5e-4)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    dense_output = keras.Model(model.input, model.get_layer("classifier").output)(images)
    np.testing.assert_allclose(model(images), LOGIT_SCALE * np.asarray(dense_output),
                               rtol=1e-6)
    assert LOGIT_SCALE == 0.125


@pytest.mark.parametrize("depth, paper_millions", [(20, 0.27), (56, 0.85), (110, 1.7)])
def test_deep_resnet_parameter_counts_match_the_paper(depth, paper_millions):
    resnet = build_model(f"resnet{depth}", 1e-4)
    plain = build_model(f"plain{depth}", 1e-4)
    trainable = sum(int(np.prod(w.shape)) for w in resnet.trainable_weights)
    assert round(trainable / 1e6, 2 if depth < 100 else 1) == paper_millions
    # Shortcuts add no parameters; plain nets have none.
    assert plain.count_params() == resnet.count_params()
    units = 3 * (depth - 2) // 6
    assert len(_layers_of(resnet, keras.layers.Add)) == units
    assert len(_layers_of(plain, keras.layers.Add)) == 0
    assert len(_layers_of(resnet, keras.layers.Conv2D)) == depth - 1
    assert len(_layers_of(resnet, keras.layers.AveragePooling2D)) == 2
    assert resnet(np.zeros((1, 32, 32, 3), np.float32)).shape == (1, 10)


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="model 'resnet18': unknown"):
        build_model("resnet18", 1e-4)
