"""DataGate: stops the run before Transform when the data has anomalies.

ExampleValidator (the new span against the reviewed schema) and, with span data,
LabelDriftValidator (its class balance against the previous span's) only record
what they find. This component reads both and fails when either found anything, so
that nothing downstream (Transform, Trainer, Evaluator, Pusher) runs and nothing is
pushed; the entry point turns the failure into its own exit status. With
`validation.block_on_anomalies=false` it warns instead.

TFDV's statistics say which feature broke the schema, not which image. When a split
has anomalies, the gate reads that split's examples once and names the first ones
that break the schema (`offending_examples`).
"""


import io
from typing import Iterable, List

from absl import logging
from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components import console
from components.contract import IMAGE_ID_KEY
from components.data.split_files import split_records
from components.validation import anomalies as anomaly_reader

# How many offending examples a split's message names.
_NAMED_EXAMPLES = 10



class DataValidationError(RuntimeError):
    """The data has anomalies and validation.block_on_anomalies is on."""


def stopped_by_data_gate(error: BaseException) -> bool:
    """Whether a pipeline run's error is the DataGate's. LocalDagRunner re-raises it as
    is; a Beam-based runner wraps it, keeping its class name in the message."""
    while error is not None:
        if (isinstance(error, DataValidationError)
                or DataValidationError.__name__ in str(error)):
            return True
        error = error.__cause__ or error.__context__
    return False


def read_schema(schema_artifact):
    """The Schema proto a Schema artifact holds (ImportSchemaGen's copy of the file)."""
    from tfx.utils import io_utils

    return io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_artifact.uri))


def _image_problem(encoded: bytes, image_domain) -> str:
    from PIL import Image

    if image_domain.max_image_byte_size and len(encoded) > image_domain.max_image_byte_size:
        return (f"{len(encoded)} bytes, more than the schema's "
                f"{image_domain.max_image_byte_size}")
    try:
        with Image.open(io.BytesIO(encoded)) as image:
            image.load()
    except Exception as error:  # any decoder error: the bytes are not an image
        return f"does not decode as an image ({type(error).__name__})"
    return ""


def example_problems(example, schema) -> List[str]:
    """What in one tf.Example breaks the schema: missing features, integers outside
    their domain, images that do not decode or exceed the size limit."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    # The tf.Example value list each schema type is stored in.
    value_kinds = {schema_pb2.BYTES: "bytes_list", schema_pb2.INT: "int64_list",
                   schema_pb2.FLOAT: "float_list"}
    problems = []
    for feature_spec in schema.feature:
        feature = example.features.feature.get(feature_spec.name)
        kind = feature.WhichOneof("kind") if feature is not None else None
        values = list(getattr(feature, kind).value) if kind else []
        expected_kind = value_kinds.get(feature_spec.type)
        if values and expected_kind and kind != expected_kind:
            problems.append(f"{feature_spec.name}: {kind}, the schema says "
                            f"{schema_pb2.FeatureType.Name(feature_spec.type)}")
            continue
        if not values:
            if feature_spec.presence.min_fraction >= 1.0:
                problems.append(f"{feature_spec.name}: missing")
            continue
        if feature_spec.HasField("int_domain"):
            domain = feature_spec.int_domain
            outside = [v for v in values if not domain.min <= v <= domain.max]
            if outside:
                problems.append(f"{feature_spec.name}: {outside[0]} outside "
                                f"[{domain.min}, {domain.max}]")
        if feature_spec.HasField("image_domain"):
            for encoded in values:
                problem = _image_problem(encoded, feature_spec.image_domain)
                if problem:
                    problems.append(f"{feature_spec.name}: {problem}")
                    break
    return problems


def offending_examples(examples_uri: str, split: str, schema,
                       limit: int = _NAMED_EXAMPLES) -> List[str]:
    """`<image_id>: <problems>` for the first `limit` examples of an Examples artifact's
    split that break the schema."""
    import tensorflow as tf

    named = []
    for record in split_records(examples_uri, split):
        example = tf.train.Example.FromString(record.numpy())
        problems = example_problems(example, schema)
        if problems:
            ids = example.features.feature[IMAGE_ID_KEY].bytes_list.value
            named.append(f"{ids[0].decode() if ids else '(no image_id)'}: "
                         f"{'; '.join(problems)}")
            if len(named) >= limit:
                break
    return named


def describe_anomalies(found: Iterable[dict], drift: bool) -> List[str]:
    return [f"{'drift from the previous span' if drift else 'schema'}, split {a['split']}, "
            f"{a['feature'] or 'dataset'}: {a['description'] or a['short']}" for a in found]


@component
def DataGate(  # noqa: N802 (a TFX component is named like a class)
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    examples: InputArtifact[standard_artifacts.Examples],
    schema: InputArtifact[standard_artifacts.Schema],
    block_on_anomalies: Parameter[bool],
    drift_anomalies: InputArtifact[standard_artifacts.ExampleAnomalies] = None,
):
    """Fails (DataValidationError) when `anomalies` or `drift_anomalies` hold any
    anomaly and `block_on_anomalies`; warns otherwise."""
    schema_anomalies = anomaly_reader.describe(anomalies.uri)
    lines = describe_anomalies(schema_anomalies, drift=False)
    if drift_anomalies is not None:
        lines += describe_anomalies(anomaly_reader.describe(drift_anomalies.uri), drift=True)
    if not lines:
        logging.info("DataGate: no anomalies")
        return
    schema_proto = read_schema(schema)
    for split in sorted({anomaly["split"] for anomaly in schema_anomalies}):
        for named in offending_examples(examples.uri, split, schema_proto):
            lines.append(f"split {split}, example {named}")
    message = "the data has anomalies:\n  " + "\n  ".join(lines)
    if block_on_anomalies:
        raise DataValidationError(
            message + "\nNothing was trained or pushed. Fix the data, or review the schema "
            "(components/validation/schema.pbtxt), or let it through with "
            "--set validation.block_on_anomalies=false")
    console.report(f"DataGate: WARNING (validation.block_on_anomalies=false): {message}")
