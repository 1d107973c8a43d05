"""The size an encoded image declares in its header, read with TensorFlow ops inside
the exported graph, so that a wrong-sized image is refused before decoding allocates
it (TF Serving runs the same graph, so it refuses it too).

A PNG declaring 20000x20000 pixels in 1 MB would otherwise be decoded in full (1.2 GB)
and only then rejected. The header fields read: PNG IHDR (big-endian width, height at
bytes 16 and 20), JPEG SOF (`tf.io.extract_jpeg_shape`, which reads markers only), BMP
info header (little-endian int32 at bytes 18 and 22; a negative height means top-down
rows). GIF is refused outright, whatever its size: giflib decodes every frame at the
size its own descriptor declares, whatever the logical screen says. The formats are
told apart by the same magic bytes TensorFlow's `decode_image` uses.
"""

from __future__ import annotations

import tensorflow as tf

from components.contract import IMAGE_HEIGHT, IMAGE_WIDTH

UNKNOWN_FORMAT = "Unknown image file format. One of JPEG, PNG, GIF, BMP required."
GIF_REFUSED = ("GIF is not accepted: its frames are decoded at the sizes they declare "
               "before any check can run; send PNG, JPEG or BMP")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_GIF_MAGIC = b"GIF8"
_BMP_MAGIC = b"BM"
# Header fields sit within the first 26 bytes; padding makes every read in bounds (a
# truncated header then reads zeros, and declares a size of 0).
_HEADER_BYTES = 26


def _unsigned(header: tf.Tensor, offset: int, size: int, big_endian: bool) -> tf.Tensor:
    digits = tf.cast(tf.io.decode_raw(tf.strings.substr(header, offset, size), tf.uint8),
                     tf.int64)
    weights = tf.constant([256 ** (size - 1 - i if big_endian else i) for i in range(size)],
                          tf.int64)
    return tf.reduce_sum(digits * weights)


def _signed32(header: tf.Tensor, offset: int) -> tf.Tensor:
    value = _unsigned(header, offset, 4, big_endian=False)
    return tf.where(value >= 2 ** 31, value - 2 ** 32, value)


def declared_size(encoded: tf.Tensor) -> tf.Tensor:
    """int64 [3] for one encoded image (a scalar string): [format, height, width], the
    format 0 for an unknown one, then 1 PNG, 2 JPEG, 3 GIF (size not read: refused
    anyway), 4 BMP."""
    header = tf.strings.substr(encoded, 0, _HEADER_BYTES) + b"\0" * _HEADER_BYTES

    def starts_with(magic: bytes) -> tf.Tensor:
        return tf.equal(tf.strings.substr(header, 0, len(magic)), magic)

    def png():
        return tf.stack([tf.constant(1, tf.int64), _unsigned(header, 20, 4, True),
                         _unsigned(header, 16, 4, True)])

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(encoded), tf.int64)
        return tf.stack([tf.constant(2, tf.int64), shape[0], shape[1]])

    def gif():
        return tf.constant([3, 0, 0], tf.int64)

    def bmp():
        return tf.stack([tf.constant(4, tf.int64), tf.abs(_signed32(header, 22)),
                         _signed32(header, 18)])

    def unknown():
        return tf.constant([0, 0, 0], tf.int64)

    return tf.case([(starts_with(_PNG_MAGIC), png), (starts_with(_JPEG_MAGIC), jpeg),
                    (starts_with(_GIF_MAGIC), gif), (starts_with(_BMP_MAGIC), bmp)],
                   default=unknown, exclusive=False)


def checked(encoded_images: tf.Tensor) -> tf.Tensor:
    """`encoded_images` (string [N]), passed on only once every image's header declares
    a known format and 32x32 pixels; otherwise InvalidArgumentError naming the first
    bad image, its index and the size it declares. Nothing is decoded here."""
    sizes = tf.map_fn(declared_size, encoded_images,
                      fn_output_signature=tf.TensorSpec([3], tf.int64))
    unknown = tf.equal(sizes[:, 0], 0)
    wrong_size = tf.logical_or(tf.not_equal(sizes[:, 1], IMAGE_HEIGHT),
                               tf.not_equal(sizes[:, 2], IMAGE_WIDTH))
    # giflib reads every frame, each at the size its own descriptor declares, before
    # TensorFlow sees the image: a GIF's header cannot bound what decoding it costs.
    gif = tf.equal(sizes[:, 0], 3)
    bad = tf.logical_or(tf.logical_or(unknown, gif), wrong_size)

    def first(flags):
        return tf.argmax(tf.cast(flags, tf.int32), output_type=tf.int64)

    def wrong_size_message():
        index = first(bad)
        size = sizes[index]
        return tf.strings.format(
            "image {} is {}x{} pixels (width x height, from its header); the model takes "
            f"{IMAGE_WIDTH}x{IMAGE_HEIGHT} images and does not resize", (index, size[2], size[1]))

    # Built only when an image is bad (an empty batch has nothing to index).
    message = tf.case(
        [(tf.reduce_any(unknown),
          lambda: tf.strings.format("image {}: " + UNKNOWN_FORMAT, first(unknown))),
         (tf.reduce_any(gif),
          lambda: tf.strings.format("image {}: " + GIF_REFUSED, first(gif))),
         (tf.reduce_any(bad), wrong_size_message)],
        default=lambda: tf.constant(""), exclusive=False)
    assertion = tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [message])
    with tf.control_dependencies([assertion]):
        return tf.identity(encoded_images)
