"""Conversion to TensorFlow Lite on a small model whose answer depends on its input:
uint8 input for both variants, int8's input quantization taking raw pixels, float16
computing what the float model computes, int8 agreeing with it on most images, and
the flip TTA inside."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from components.contract import IMAGE_SHAPE, NUM_CLASSES, TFLITE_INPUT, TFLITE_SIGNATURE
from components.tflite import convert

CHANNEL_MEAN, CHANNEL_STD = np.array([125.0, 122.0, 113.0]), np.array([63.0, 62.0, 66.0])


def _model() -> keras.Model:
    """Logits from the left and right halves' channel means: the class depends on the
    colour and on which side it is, so a flip changes the answer."""
    rng = np.random.default_rng(0)
    inputs = keras.Input(IMAGE_SHAPE)
    conv = keras.layers.Conv2D(16, 3, padding="same", activation="relu")
    features = keras.layers.GlobalAveragePooling2D()(conv(inputs))
    dense = keras.layers.Dense(NUM_CLASSES)
    model = keras.Model(inputs, dense(features))
    conv.set_weights([rng.normal(0, 0.5, (3, 3, 3, 16)), rng.normal(0, 0.2, 16)])
    dense.set_weights([rng.normal(0, 0.5, (16, NUM_CLASSES)), np.zeros(NUM_CLASSES)])
    return model


def _float_probabilities(model, pixels: np.ndarray, tta_flip: bool) -> np.ndarray:
    images = (pixels.astype(np.float32) - CHANNEL_MEAN) / CHANNEL_STD
    logits = model(images, training=False)
    if tta_flip:
        logits = (logits + model(images[:, :, ::-1], training=False)) / 2
    return tf.nn.softmax(logits).numpy()


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    rng = np.random.default_rng(1)
    # Images with a colour cast each, so that classes vary across them.
    casts = rng.integers(0, 256, size=(300, 1, 1, 3))
    noise = rng.integers(-40, 41, size=(300,) + IMAGE_SHAPE)
    return np.clip(casts + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("tta_flip", [True, False])
def test_float16_computes_what_the_float_model_computes(pixels, tta_flip):
    model = _model()
    content = convert.convert(model, CHANNEL_MEAN, CHANNEL_STD, tta_flip, convert.FLOAT16,
                              pixels[:50])
    interpreter = tf.lite.Interpreter(model_content=content)
    (input_detail,) = interpreter.get_signature_runner(TFLITE_SIGNATURE).get_input_details(
        ).values()
    assert input_detail["dtype"] == np.uint8
    expected = _float_probabilities(model, pixels, tta_flip)
    np.testing.assert_allclose(convert.run(content, pixels), expected, atol=1e-2)
    assert len(set(expected.argmax(axis=1))) >= 3  # the classes do vary


def test_int8_takes_raw_pixels_and_agrees_with_the_float_model(pixels):
    model = _model()
    content = convert.convert(model, CHANNEL_MEAN, CHANNEL_STD, True, convert.INT8,
                              pixels[:200])
    runner = tf.lite.Interpreter(model_content=content).get_signature_runner(TFLITE_SIGNATURE)
    input_detail = runner.get_input_details()[TFLITE_INPUT]
    assert input_detail["dtype"] == np.uint8
    # Scale 1, zero point 0: the quantized input is the pixel value itself.
    assert input_detail["quantization"] == (1.0, 0)
    expected = _float_probabilities(model, pixels[200:], True).argmax(axis=1)
    agreement = np.mean(convert.run(content, pixels[200:]).argmax(axis=1) == expected)
    assert agreement >= 0.9, agreement


def test_an_unknown_variant_is_refused(pixels):
    with pytest.raises(ValueError, match="TFLite variant 'int4': unknown"):
        convert.convert(_model(), CHANNEL_MEAN, CHANNEL_STD, False, "int4", pixels)
