"""Unlabeled images to score, as tf.Examples, and the files refused with the reason.

A scoring directory holds image files (PNG, JPEG, BMP) or CIFAR-10 batch files in an
official layout (`data_batch_N`, `test_batch`, their `.bin` twins: the layout always
holds labels; they are read, checked as any batch file's, and not used). Each image
becomes a tf.Example with the features the model's `serving_examples` signature reads
(`image`: the bytes as sent; batch images encoded as PNG, as ExampleGen stores them)
and its name (`image_id`: the file name, or `<batch>:<index>`).

What the model would refuse is refused here, named with the reason, so that one bad
file cannot fail a whole inference batch. The model's own checks run on each file (the
header check every signature starts with, then the Transform graph's decode), so a
file is refused exactly when the model would refuse it: not an image TensorFlow
decodes, a GIF, not 32x32 (the model does not resize). As a Beam transform, a large
directory runs on any Beam runner.
"""

from __future__ import annotations

import json
import os
import re
from typing import Iterable, List, Tuple

import apache_beam as beam

from components.console import UserError
from components.contract import IMAGE_HEIGHT, IMAGE_WIDTH
from components.data.split_files import split_uri
from components.data.tf_errors import plain_message

IMAGES_SPLIT = "images"  # the one split of the scored Examples
ACCEPTED, REFUSED = "accepted", "refused"
ACCEPTED_COUNTER = "images_accepted"  # a Beam counter: images written as Examples
_BATCH_FILE = re.compile(r"^(data_batch_\d+|test_batch)(\.bin)?$")
# Files of the official layouts that hold no images.
_LAYOUT_FILES = {"batches.meta", "batches.meta.txt", "readme.html"}
_LAYOUT_DIRS = ("cifar-10-batches-py", "cifar-10-batches-bin")
# components.export.image_header.declared_size's format codes.
_UNKNOWN_FORMAT, _GIF_FORMAT = 0, 3


class ScoringInputError(UserError, ValueError):
    """A scoring directory that holds nothing to score."""


def input_files(data_dir: str) -> List[str]:
    """The files to score: those in `data_dir` and in its official layout folders,
    the layouts' metadata files left out."""
    from tfx.dsl.io import fileio

    if not fileio.isdir(data_dir):
        raise ScoringInputError(
            f"--data-dir {data_dir}: " + ("a file, not a directory: give the directory "
                                          "that holds the images" if fileio.exists(data_dir)
                                          else "no such directory"))
    layout_dirs = [os.path.join(data_dir, name) for name in _LAYOUT_DIRS
                   if fileio.isdir(os.path.join(data_dir, name))]
    files = []
    for folder in [data_dir] + layout_dirs:
        for name in sorted(fileio.listdir(folder)):
            path = os.path.join(folder, name.rstrip("/"))
            # Anything else, a folder or a file that cannot be read included, is
            # examined, and refused with its reason.
            if name.rstrip("/") not in _LAYOUT_FILES and path not in layout_dirs:
                files.append(path)
    if not files:
        raise ScoringInputError(f"--data-dir {data_dir}: holds no files to score")
    return files


def image_problem(encoded: bytes) -> str:
    """Why the served model would refuse the encoded image, or "": its own header check
    (`components.export.image_header`, in every signature) and the Transform graph's decode."""
    import tensorflow as tf

    from components.export.image_header import declared_size

    image_format, height, width = declared_size(tf.constant(encoded)).numpy().tolist()
    if image_format == _UNKNOWN_FORMAT:
        return "undecodable: not a PNG, JPEG or BMP image"
    if image_format == _GIF_FORMAT:
        return "GIF is not accepted: send PNG, JPEG or BMP"
    if (width, height) != (IMAGE_WIDTH, IMAGE_HEIGHT):
        return (f"wrong size: {width}x{height} pixels; the model takes "
                f"{IMAGE_WIDTH}x{IMAGE_HEIGHT} and does not resize")
    try:
        tf.io.decode_image(encoded, channels=3, expand_animations=False)
    except tf.errors.InvalidArgumentError as error:
        return f"undecodable: {plain_message(error)}"
    return ""


def _unreadable(error: BaseException, path: str) -> str:
    return f"unreadable: {plain_message(error, path)}"


def examine(path: str) -> Iterable[Tuple[str, object]]:
    """(ACCEPTED, serialized tf.Example) per image of the file at `path`, or
    (REFUSED, {"image": name, "reason": why})."""
    from tfx.dsl.io import fileio

    from components.data import cifar10_format
    from components.data.example_gen import encode_png, image_example

    import tensorflow as tf

    name = os.path.basename(path)
    accepted = beam.metrics.Metrics.counter("scoring", ACCEPTED_COUNTER)
    if _BATCH_FILE.match(name):
        try:
            batch = cifar10_format.read_batch(path, opener=fileio.open)
        except cifar10_format.Cifar10DataError as error:
            yield REFUSED, {"image": name, "reason": f"unreadable batch file: {error}"}
            return
        except (OSError, tf.errors.OpError) as error:
            yield REFUSED, {"image": name, "reason": _unreadable(error, path)}
            return
        accepted.inc(len(batch))
        for image_id, pixels in zip(batch.ids, batch.images):
            yield ACCEPTED, image_example(image_id, encode_png(pixels)).SerializeToString()
        return
    if fileio.isdir(path):
        yield REFUSED, {"image": name, "reason": "a folder, not an image or batch file "
                                                 "(only the official layout's folders are "
                                                 "searched)"}
        return
    try:
        with fileio.open(path, "rb") as image_file:
            encoded = image_file.read()
    except (OSError, tf.errors.OpError) as error:  # a symlink loop, permissions
        yield REFUSED, {"image": name, "reason": _unreadable(error, path)}
        return
    problem = image_problem(encoded)
    if problem:
        yield REFUSED, {"image": name, "reason": problem}
    else:
        accepted.inc()
        yield ACCEPTED, image_example(name, encoded).SerializeToString()


@beam.ptransform_fn
def WriteScoringExamples(pipeline, files: List[str], examples_uri: str,  # noqa: N802
                         refused_prefix: str):
    """Writes the accepted images as TFX Examples (`<examples_uri>/Split-images/`,
    gzipped TFRecords as ExampleGen writes them) and the refused ones as JSON lines."""
    examined = (pipeline
                | "ListFiles" >> beam.Create(files)
                # One file is one element: spread a directory's files over the workers.
                | "Redistribute" >> beam.Reshuffle()
                | "Examine" >> beam.FlatMap(examine))
    accepted = (examined | "Accepted" >> beam.Filter(lambda item: item[0] == ACCEPTED)
                | "Serialized" >> beam.Map(lambda item: item[1]))
    refused = (examined | "Refused" >> beam.Filter(lambda item: item[0] == REFUSED)
               | "AsJson" >> beam.Map(lambda item: json.dumps(item[1])))
    accepted | "WriteExamples" >> beam.io.WriteToTFRecord(
        os.path.join(split_uri(examples_uri, IMAGES_SPLIT), "data_tfrecord"),
        file_name_suffix=".gz")
    refused | "WriteRefused" >> beam.io.WriteToText(refused_prefix, file_name_suffix=".jsonl")
