"""The exported graph's header check: a wrong-sized or unknown image is refused from its
header alone, naming the size it declares; a 32x32 PNG, JPEG or BMP passes; GIF is
refused."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from components.export import image_header
from tests.support.fuzz import FUZZ, mutated

check = tf.function(image_header.checked, input_signature=[tf.TensorSpec([None], tf.string)])


def _encoded(image_format: str, size=(32, 32)) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


FORMATS = ("PNG", "JPEG", "BMP")
VALID = {image_format: _encoded(image_format) for image_format in FORMATS}
GIF = _encoded("GIF")


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR declaring width x height, and no pixel data at all."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))


def _refusal(images) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as raised:
        check(tf.constant(images, tf.string))
    return raised.value.message


def test_every_format_at_32x32_passes_and_decodes():
    passed = check(tf.constant(list(VALID.values())))
    assert passed.shape == (3,)
    for encoded in passed.numpy():
        assert tf.io.decode_image(encoded, channels=3, expand_animations=False).shape == \
            (32, 32, 3)
    assert check(tf.constant([], tf.string)).shape == (0,)


@pytest.mark.parametrize("image_format", FORMATS)
def test_another_size_is_refused_naming_it_and_the_image(image_format):
    message = _refusal([VALID["PNG"], _encoded(image_format, size=(48, 40))])
    assert "image 1 is 48x40 pixels" in message and "takes 32x32 images" in message


def test_the_first_bad_image_is_named_among_several():
    message = _refusal([VALID["PNG"], VALID["JPEG"], _png_header(31, 32), _png_header(64, 64)])
    assert "image 2 is 31x32 pixels" in message


def test_a_gif_is_refused_naming_why():
    """Even at 32x32: giflib decodes every frame at the size its own descriptor
    declares, before any check in the graph could run."""
    message = _refusal([VALID["PNG"], GIF])
    assert "image 1: GIF is not accepted" in message


def test_a_huge_declared_size_is_refused_without_decoding():
    """The PNG of the security review: 20000x20000 declared (1.2 GB decoded). Refused
    from its 33-byte header, in milliseconds."""
    check(tf.constant([VALID["PNG"]]))  # traced before the clock starts
    started = time.monotonic()
    message = _refusal([_png_header(20000, 20000)])
    assert "image 0 is 20000x20000 pixels" in message
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("content", [b"not an image", b"", b"GIF", b"\x89PNG\r\n"])
def test_unknown_or_truncated_headers_are_named(content):
    message = _refusal([VALID["PNG"], content])
    assert "image 1" in message
    assert (image_header.UNKNOWN_FORMAT in message or "0x0 pixels" in message
            or "Invalid JPEG" in message)


@FUZZ
@given(data=st.data())
@example(data=None)
def test_fuzz_mutated_headers_pass_only_when_they_declare_32x32(data):
    for image_format, original in {**VALID, "GIF": GIF}.items():
        encoded = original if data is None else data.draw(mutated(original[:64] if
                                                                  data.draw(st.booleans())
                                                                  else original))
        started = time.monotonic()
        try:
            check(tf.constant([encoded]))
        except tf.errors.InvalidArgumentError as error:
            assert "image 0" in error.message or "JPEG" in error.message, error.message
        else:
            # Passed: what decoding makes of it is 32x32, or a named decoding error.
            try:
                decoded = tf.io.decode_image(encoded, channels=3, expand_animations=False)
            except tf.errors.InvalidArgumentError:
                pass
            else:
                assert decoded.shape == (32, 32, 3), (image_format, decoded.shape)
        assert time.monotonic() - started < 5
