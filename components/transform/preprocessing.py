"""The Transform component's preprocessing_fn: decode and per-channel Z-score.

The input is the encoded image (PNG in the training data; PNG or JPEG from clients
of the served model, which embeds this graph).

The mean and standard deviation of each colour channel are computed by tft analyzers
over every pixel of the train split in one full Beam pass, and baked into the
transform graph as constants. That graph is later embedded in the exported model, so
servers and clients send raw pixels and never re-implement the normalisation.

Augmentation is deliberately absent: Transform runs once, augmentation must be fresh
every epoch, so it lives in the Trainer.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from components.contract import (IMAGE_CHANNELS, IMAGE_KEY, IMAGE_SHAPE, IMAGE_XF_KEY,
                                 LABEL_KEY, LABEL_XF_KEY)


def _decode_one(encoded: tf.Tensor) -> tf.Tensor:
    image = tf.io.decode_image(encoded, channels=IMAGE_CHANNELS, expand_animations=False)
    # Images of another size are rejected, not resized: a resized image is not what
    # the model was trained on, and the caller should know.
    return tf.ensure_shape(image, IMAGE_SHAPE)


def decode_images(encoded_images: tf.Tensor) -> tf.Tensor:
    """PNG/JPEG/BMP/GIF bytes, shape [batch] or [batch, 1] -> float32 [batch, 32, 32, 3]."""
    images = tf.map_fn(_decode_one, tf.reshape(encoded_images, [-1]),
                       fn_output_signature=tf.TensorSpec(IMAGE_SHAPE, tf.uint8))
    return tf.cast(images, tf.float32)


def preprocessing_fn(inputs):
    images = decode_images(inputs[IMAGE_KEY])
    # Every pixel is an instance for the analyzer, so the statistics are per channel.
    # float64 keeps the variance exact over ~51M values per channel.
    pixels_by_channel = tf.cast(tf.reshape(images, [-1, IMAGE_CHANNELS]), tf.float64)
    # tft packs analyzers of one phase into a single Beam pass over the data.
    channel_mean = tf.cast(tft.mean(pixels_by_channel, reduce_instance_dims=False), tf.float32)
    channel_var = tft.var(pixels_by_channel, reduce_instance_dims=False)
    channel_std = tf.cast(tf.sqrt(channel_var), tf.float32)
    return {
        IMAGE_XF_KEY: (images - channel_mean) / channel_std,
        LABEL_XF_KEY: tf.reshape(inputs[LABEL_KEY], [-1]),
    }


def channel_statistics(transform_graph) -> tuple:
    """(mean, standard deviation) of each colour channel over the train split, as the
    transform graph holds them (`transform_graph`: its URI or its `TFTransformOutput`):
    read back by running the graph on an all-0 and an all-255 image
    (x_xf = (x - mean) / std), not re-computed, so they are exactly what the served
    model subtracts and divides by."""
    import numpy as np

    if isinstance(transform_graph, str):
        transform_graph = tft.TFTransformOutput(transform_graph)
    extremes = [tf.io.encode_png(tf.fill(IMAGE_SHAPE, tf.constant(value, tf.uint8)))
                for value in (0, 255)]
    transformed = transform_graph.transform_features_layer()(
        {IMAGE_KEY: tf.reshape(tf.stack(extremes), [-1, 1])})[IMAGE_XF_KEY].numpy()
    # One value per channel: every pixel of a constant image transforms alike.
    at_zero, at_full = (transformed[index].reshape(-1, IMAGE_CHANNELS)[0].astype(np.float64)
                        for index in (0, 1))
    std = 255.0 / (at_full - at_zero)
    return -at_zero * std, std
