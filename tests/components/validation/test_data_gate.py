"""The DataGate on real components: StatisticsGen and ExampleValidator check examples
against the reviewed schema, and the gate stops the run naming the images that break
it, or lets it through when told to."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf
from tfx import v1 as tfx
from tfx.orchestration import metadata

from components.contract import IMAGE_KEY, LABEL_KEY
from components.data.example_gen import to_example
from components.validation.data_gate import (DataGate, DataValidationError,
                                             example_problems)
from pipeline.pipeline import DEFAULT_SCHEMA_FILE
from tests.support.data import random_batch, reviewed_schema


def _examples(count: int = 330):
    """`count` good examples; by default enough for both of ImportExampleGen's splits
    to hold the 100 values TFDV needs before it computes image statistics."""
    images, labels = random_batch(count, seed=3)
    return [to_example(f"data_batch_1:{index:05d}", image, label)
            for index, (image, label) in enumerate(zip(images, labels))]


def test_a_good_example_has_no_problem():
    assert example_problems(_examples(1)[0], reviewed_schema()) == []


def test_each_broken_rule_is_named():
    schema = reviewed_schema()
    example = _examples(1)[0]
    example.features.feature[LABEL_KEY].int64_list.value[0] = 12
    example.features.feature[IMAGE_KEY].bytes_list.value[0] = b"\x89PNG truncated"
    assert example_problems(example, schema) == [
        "image: does not decode as an image (UnidentifiedImageError)",
        "label: 12 outside [0, 9]"]
    del example.features.feature["image_id"]
    assert "image_id: missing" in example_problems(example, schema)
    wrong_kind = _examples(1)[0]
    wrong_kind.features.feature[LABEL_KEY].Clear()
    wrong_kind.features.feature[LABEL_KEY].bytes_list.value.append(b"cat")
    assert example_problems(wrong_kind, schema) == ["label: bytes_list, the schema says INT"]
    huge = _examples(1)[0]
    huge.features.feature[IMAGE_KEY].bytes_list.value[0] = b"x" * 5000
    assert example_problems(huge, schema) == ["image: 5000 bytes, more than the schema's 4096"]


def _validation_pipeline(tmp_path, records_dir: str, block: bool):
    example_gen = tfx.components.ImportExampleGen(input_base=records_dir)
    schema_gen = tfx.components.ImportSchemaGen(schema_file=DEFAULT_SCHEMA_FILE)
    import tensorflow_data_validation as tfdv
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        stats_options=tfdv.StatsOptions(enable_semantic_domain_stats=True))
    validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    gate = DataGate(anomalies=validator.outputs["anomalies"],
                    examples=example_gen.outputs["examples"],
                    schema=schema_gen.outputs["schema"], block_on_anomalies=block)
    return tfx.dsl.Pipeline(
        pipeline_name="validation", pipeline_root=str(tmp_path / "root"),
        components=[example_gen, schema_gen, statistics_gen, validator, gate],
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.sqlite")),
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"])


def _write_records(directory, examples):
    os.makedirs(directory)
    with tf.io.TFRecordWriter(os.path.join(directory, "examples.tfrecord")) as writer:
        for example in examples:
            writer.write(example.SerializeToString())


@pytest.mark.slow
def test_an_image_that_breaks_the_schema_is_named_and_stops_the_run(tmp_path):
    examples = _examples()
    examples[7].features.feature[IMAGE_KEY].bytes_list.value[0] = b"not an image"
    examples[9].features.feature[LABEL_KEY].int64_list.value[0] = 12
    records = str(tmp_path / "records")
    _write_records(records, examples)
    runner = tfx.orchestration.LocalDagRunner()

    with pytest.raises(DataValidationError) as blocked:
        runner.run(_validation_pipeline(tmp_path, records, block=True))

    message = str(blocked.value)
    assert "image: Fraction of values containing TensorFlow supported images" in message
    assert "label: Unexpectedly large value: 12" in message
    assert "data_batch_1:00007: image: does not decode as an image" in message
    assert "data_batch_1:00009: label: 12 outside [0, 9]" in message
    assert message.count("example data_batch_1:") == 2  # the good ones are not named

    # Told to let it through, the same data passes the gate.
    runner.run(_validation_pipeline(tmp_path, records, block=False))


@pytest.mark.slow
def test_clean_examples_pass(tmp_path):
    records = str(tmp_path / "records")
    _write_records(records, _examples())
    # A run that does not raise is the gate passing: with any anomaly it would raise.
    tfx.orchestration.LocalDagRunner().run(_validation_pipeline(tmp_path, records, block=True))
