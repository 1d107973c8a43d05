"""A file-based ExampleGen for the official CIFAR-10 layouts, as a Beam pipeline.

The standard `FileBasedExampleGen` driver resolves spans and fingerprints the input
files (so TFX caching skips a re-run on unchanged data); this module supplies the
executor's Beam transform that reads batch files and turns each image into a
tf.Example:

- `image`: the 32x32 RGB image as PNG bytes. Lossless, and the same encoding clients
  send to the served model: the Transform graph decodes it, so training data and
  served requests go through one preprocessing path. The decode happens once, in
  Transform; the Trainer reads the decoded, normalised floats.
- `label`: int64 class id, 0..9.
- `image_id`: `<batch name>:<index>`, e.g. `data_batch_3:00042`, stable across runs and
  the same in both layouts.

Files are opened through TFX's file-system layer, so `input_base` may be a GCS/S3
path when the pipeline runs on Dataflow, Flink or Spark.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional

import apache_beam as beam
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import standard_component_specs

from components.contract import IMAGE_ID_KEY, IMAGE_KEY, LABEL_KEY
from components.data import cifar10_format

# Settings the executor reads from the component's custom_config.
IMAGES_PER_FILE = "images_per_file"


def make_custom_config(images_per_file: Optional[int] = None) -> example_gen_pb2.CustomConfig:
    """Packs executor settings into ExampleGen's custom_config (an Any proto)."""
    settings = struct_pb2.Struct()
    if images_per_file is not None:
        settings[IMAGES_PER_FILE] = images_per_file
    custom_config = example_gen_pb2.CustomConfig()
    custom_config.custom_config.Pack(settings)
    return custom_config


def read_custom_config(exec_properties: Dict[str, Any]) -> dict:
    serialized = exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY)
    if not serialized:
        return {}
    custom_config = example_gen_pb2.CustomConfig()
    json_format.Parse(serialized, custom_config)
    settings = struct_pb2.Struct()
    if custom_config.HasField("custom_config"):
        custom_config.custom_config.Unpack(settings)
    return json_format.MessageToDict(settings)


def encode_png(image: Any) -> bytes:
    """HWC uint8 pixels -> PNG bytes."""
    return tf.io.encode_png(image).numpy()


def image_example(image_id: str, encoded: bytes, label: Optional[int] = None
                  ) -> tf.train.Example:
    """The tf.Example of one encoded image, with its label when it has one (images to
    score have none)."""
    feature = {IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))}
    if label is not None:
        feature[LABEL_KEY] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)]))
    feature[IMAGE_ID_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[image_id.encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


def to_example(image_id: str, image: Any, label: int) -> tf.train.Example:
    return image_example(image_id, encode_png(image), label)


def _read_batch_file(path: str, limit: Optional[int]) -> Iterable[tuple]:
    batch = cifar10_format.read_batch(path, limit, opener=fileio.open)
    beam.metrics.Metrics.counter("cifar10", "images_read").inc(len(batch))
    yield from zip(batch.ids, batch.images, batch.labels)


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _Cifar10ToExample(pipeline: beam.Pipeline, exec_properties: Dict[str, Any],
                      split_pattern: str) -> beam.pvalue.PCollection:
    """Reads the batch files `split_pattern` matches under input_base."""
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    file_pattern = os.path.join(input_base, split_pattern)
    batch_files = sorted(fileio.glob(file_pattern))
    if not batch_files:
        raise cifar10_format.Cifar10DataError(f"{file_pattern}: no batch files match")
    images_per_file = read_custom_config(exec_properties).get(IMAGES_PER_FILE)
    limit = int(images_per_file) if images_per_file is not None else None
    return (pipeline
            | "ListBatchFiles" >> beam.Create(batch_files)
            | "ReadBatchFiles" >> beam.FlatMap(_read_batch_file, limit)
            # One file is one element: spread its 10,000 images over the workers.
            | "Redistribute" >> beam.Reshuffle()
            | "ToTFExample" >> beam.MapTuple(to_example))


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor for the official CIFAR-10 python and binary batches."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _Cifar10ToExample
