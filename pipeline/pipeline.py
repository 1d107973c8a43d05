"""The one pipeline factory every runner (local, Beam, Airflow, Kubeflow) calls.

It takes the config's typed sections plus two small descriptions of where this
instance of the pipeline lives (`Locations`) and what it ingests (`Ingestion`); it
reads no profile, environment variable or command line. `pipeline.builders` turns a
`PipelineConfig` into these arguments for each runner.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

import tensorflow_data_validation as tfdv
from tfx import v1 as tfx
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import metadata
from tfx.proto import example_gen_pb2, range_config_pb2, transform_pb2

from components.push import executor as cifar10_pusher
from components.contract import EXAMPLES_SIGNATURE, TEST_SPLIT, TRAIN_SPLIT, tflite_base_path
from components.data import example_gen as cifar10_example_gen, spans
from components.evaluation.eval_config import make_eval_config
from components.evaluation.regression_gate import RegressionGate
from components.push.serving_load_check import ServingLoadCheck
from components.tflite.component import TFLiteExport
from components.tflite.config import TFLiteConfig
from components.tflite.pusher import TFLitePusher
from components.training import config as trainer_settings
from components.training.config import TrainingConfig
from components.validation import drift
from components.validation.data_gate import DataGate
from pipeline_config import BeamConfig, EvaluationConfig, TransformConfig, ValidationConfig

PREPROCESSING_FN = "components.transform.preprocessing.preprocessing_fn"
RUN_FN = "components.training.run_fn.run_fn"

# Node ids the runners and the run report refer to.
EXAMPLE_GEN_ID = "Cifar10ExampleGen"
TRAINING_SPANS_RESOLVER_ID = "TrainingSpansResolver"
LATEST_BLESSED_MODEL_RESOLVER_ID = "LatestBlessedModelResolver"
PREVIOUS_SPAN_STATISTICS_RESOLVER_ID = "PreviousSpanStatisticsResolver"
DATA_GATE_ID = "DataGate"
LABEL_DRIFT_ID = "LabelDriftValidator"
REGRESSION_GATE_ID = "RegressionGate"
SERVING_LOAD_CHECK_ID = "ServingLoadCheck"
TFLITE_EXPORT_ID = "TFLiteExport"
TFLITE_PUSHER_ID = "TFLitePusher"
# TFX's own components, under their default ids.
STATISTICS_GEN_ID = "StatisticsGen"
EXAMPLE_VALIDATOR_ID = "ExampleValidator"
TRANSFORM_ID = "Transform"
TRAINER_ID = "Trainer"
EVALUATOR_ID = "Evaluator"
PUSHER_ID = "Pusher"
# Output keys of the project's own components. Unique across the pipeline: Airflow's
# launcher names an output artifact "<key>:<run id>", unique per artifact type, so a
# second ExampleAnomalies "anomalies" or ModelBlessing "blessing" would clash.
REGRESSION_GATE_OUTPUT = "gate_blessing"
LABEL_DRIFT_OUTPUT = "drift_anomalies"
SERVING_LOAD_CHECK_OUTPUT = "infra_blessing"
TFLITE_EXPORT_OUTPUT = "tflite_models"
TFLITE_PUSHER_OUTPUT = "tflite_push"
# The validators whose anomalies stop a run, with the output key that holds them.
VALIDATOR_OUTPUTS = {EXAMPLE_VALIDATOR_ID: "anomalies", LABEL_DRIFT_ID: LABEL_DRIFT_OUTPUT}

# The reviewed schema ImportSchemaGen loads unless validation.schema_file says otherwise.
DEFAULT_SCHEMA_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "components", "validation", "schema.pbtxt")


@dataclasses.dataclass(frozen=True)
class Locations:
    """Where one instance of the pipeline keeps its state; each runner has its own."""

    pipeline_root: str
    # TF Serving's model base path: a blessed model becomes <it>/<unix-time version>/.
    serving_model_base_path: str
    # SQLite MLMD file; None leaves the connection to the orchestrator (Kubeflow, Vertex).
    metadata_path: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Ingestion:
    """What ExampleGen reads, and which ingested spans the model trains on."""

    # Directory (local or remote file system) the split patterns are relative to.
    input_base: str
    # Globs for the train and test batch files; may contain `{SPAN}`.
    train_pattern: str
    test_pattern: str
    # Keep the first N images of each batch file (small profiles); None: all.
    images_per_file: Optional[int] = None
    # With `{SPAN}` patterns, the span ExampleGen ingests; None: the latest span,
    # found by ExampleGen's driver when the run starts.
    span: Optional[int] = None
    # With `{SPAN}` patterns, train on the newest N spans ExampleGen has ingested in
    # this and earlier runs (0: every span); None: this run's ExampleGen output only
    # (unspanned data, or an orchestrator whose compiler supports only TFX's own
    # resolver strategies, like Kubeflow V2).
    training_spans: Optional[int] = None


def create_pipeline(
    *,
    pipeline_name: str,
    locations: Locations,
    ingestion: Ingestion,
    beam: BeamConfig,
    transform: TransformConfig,
    validation: ValidationConfig,
    training: TrainingConfig,
    evaluation: EvaluationConfig,
    tflite: TFLiteConfig = TFLiteConfig(),
    warm_start: bool = False,
    infra_validation_image_tag: Optional[str] = None,
    serving_load_check: bool = True,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """CIFAR-10 ingestion -> statistics, validation against the reviewed schema (and,
    with spans, drift from the previous span) -> DataGate (stops on anomalies) ->
    Z-score Transform -> Trainer -> Evaluator (accuracy gate) -> RegressionGate (no
    regression on the last blessed model, image by image) and InfraValidator or the
    ServingLoadCheck (TF Serving can run it) -> Pusher; beside them, TFLiteExport
    (the model as TensorFlow Lite, checked on the test split) -> TFLitePusher (the
    variants that passed, with the version the Pusher pushed).

    Args:
      beam: the Beam arguments every Beam-powered component gets.
      warm_start: the Trainer starts from the weights of the newest version under
        `locations.serving_model_base_path` (the last pushed model) when there is one.
      infra_validation_image_tag: a `tensorflow/serving` image tag: InfraValidator
        loads the model in that TF Serving (local Docker) and sends it test examples
        before the Pusher may push it; None: no InfraValidator.
      serving_load_check: without InfraValidator, the ServingLoadCheck loads the model
        as TF Serving does, in a process of its own, before the Pusher may push it.
    """
    example_gen = _ingest(ingestion)
    validation_nodes, schema_gen, data_gate = _validate(example_gen, ingestion, validation)
    span_nodes, training_examples = _training_examples(example_gen, data_gate, ingestion)
    transform_component = _transform(training_examples, schema_gen, data_gate, transform)
    trainer = _train(transform_component, schema_gen, training, locations, warm_start)
    evaluation_nodes, regression_gate = _evaluate(example_gen, trainer, evaluation)
    check_nodes, infra_blessing = _serving_check(example_gen, trainer,
                                                 infra_validation_image_tag,
                                                 serving_load_check)
    pusher = _push(trainer, regression_gate, infra_blessing, locations)
    tflite_nodes = _tflite(example_gen, transform_component, trainer, pusher, training,
                           tflite, locations) if tflite.variants else []
    components = [example_gen, *validation_nodes, data_gate, *span_nodes,
                  transform_component, trainer, *evaluation_nodes, *check_nodes, pusher,
                  *tflite_nodes]
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=locations.pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=(
            metadata.sqlite_metadata_connection_config(locations.metadata_path)
            if locations.metadata_path else None),
        beam_pipeline_args=beam.pipeline_args(),
    )


def _ingest(ingestion: Ingestion) -> FileBasedExampleGen:
    range_config = None
    if ingestion.span is not None:
        range_config = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
            start_span_number=ingestion.span, end_span_number=ingestion.span))
    return FileBasedExampleGen(
        input_base=ingestion.input_base,
        range_config=range_config,
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=TRAIN_SPLIT, pattern=ingestion.train_pattern),
            example_gen_pb2.Input.Split(name=TEST_SPLIT, pattern=ingestion.test_pattern),
        ]),
        custom_config=cifar10_example_gen.make_custom_config(ingestion.images_per_file),
        custom_executor_spec=executor_spec.BeamExecutorSpec(cifar10_example_gen.Executor),
    ).with_id(EXAMPLE_GEN_ID)


def _validate(example_gen, ingestion: Ingestion, validation: ValidationConfig) -> tuple:
    """Statistics, the reviewed schema, the validators and the DataGate: (the nodes
    before the gate, ImportSchemaGen, the DataGate)."""
    # The reviewed schema, not one inferred from the statistics it would then check.
    schema_gen = tfx.components.ImportSchemaGen(
        schema_file=validation.schema_file or DEFAULT_SCHEMA_FILE)
    # With the schema, label statistics are categorical (a count per class, which the
    # drift check compares); semantic-domain statistics tell whether images decode.
    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        stats_options=tfdv.StatsOptions(enable_semantic_domain_stats=True))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"])
    components = [schema_gen, statistics_gen, example_validator]

    drift_anomalies = None
    if ingestion.training_spans is not None:
        # Every statistics artifact of this pipeline, to pick the previous span's.
        previous_statistics = tfx.dsl.Resolver(
            strategy_class=drift.PreviousSpanStatisticsStrategy,
            statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                                       producer_component_id=statistics_gen.id,
                                       output_key="statistics"),
        ).with_id(PREVIOUS_SPAN_STATISTICS_RESOLVER_ID)
        previous_statistics.add_upstream_node(statistics_gen)
        label_drift = drift.LabelDriftValidator(
            statistics=statistics_gen.outputs["statistics"],
            baseline_statistics=previous_statistics.outputs["statistics"],
            schema=schema_gen.outputs["schema"],
            threshold=validation.label_drift_threshold,
        ).with_id(LABEL_DRIFT_ID)
        components += [previous_statistics, label_drift]
        drift_anomalies = label_drift.outputs[LABEL_DRIFT_OUTPUT]

    data_gate = DataGate(
        anomalies=example_validator.outputs["anomalies"],
        drift_anomalies=drift_anomalies,
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        block_on_anomalies=validation.block_on_anomalies,
    ).with_id(DATA_GATE_ID)
    return components, schema_gen, data_gate


def _training_examples(example_gen, data_gate, ingestion: Ingestion) -> tuple:
    """(the span resolver, if any; the examples the model trains on)."""
    # Statistics, schema and validation cover the newly ingested span; earlier spans
    # were validated when they arrived (pipeline.local_runner.ingest_earlier_spans runs
    # them up to the DataGate), and spans the gate stopped are not trained on.
    training_examples = example_gen.outputs["examples"]
    if ingestion.training_spans is not None:
        # Earlier runs' spans are not outputs of this run: a plain Channel reads every
        # Examples artifact ExampleGen ever published in this pipeline.
        span_resolver = tfx.dsl.Resolver(
            strategy_class=spans.LatestSpansStrategy,
            config={"num_spans": ingestion.training_spans, "validated_only": True},
            examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                     producer_component_id=example_gen.id,
                                     output_key="examples"),
        ).with_id(TRAINING_SPANS_RESOLVER_ID)
        # After the gate: this run's span counts once the gate has let it through.
        span_resolver.add_upstream_node(data_gate)
        return [span_resolver], span_resolver.outputs["examples"]
    return [], training_examples


def _transform(training_examples, schema_gen, data_gate, transform: TransformConfig):
    # Statistics come from the train split only; the test split is transformed with
    # them, exactly as a served image will be.
    transform_component = tfx.components.Transform(
        examples=training_examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=transform_pb2.SplitsConfig(
            analyze=[TRAIN_SPLIT], transform=[TRAIN_SPLIT, TEST_SPLIT]),
        disable_statistics=transform.disable_statistics,
    )
    # Nothing downstream of the gate runs on data with anomalies.
    transform_component.add_upstream_node(data_gate)
    return transform_component


def _train(transform_component, schema_gen, training: TrainingConfig, locations: Locations,
           warm_start: bool):
    # The test split is the eval split, as in the recipe: no validation set is carved
    # out of the 50,000 training images.
    return tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform_component.outputs["transformed_examples"],
        transform_graph=transform_component.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=[TRAIN_SPLIT]),
        eval_args=tfx.proto.EvalArgs(splits=[TEST_SPLIT]),
        custom_config={
            trainer_settings.TRAINING_KEY: dataclasses.asdict(training),
            # Backups outlive a killed execution so that its retry resumes.
            trainer_settings.BACKUP_ROOT_KEY: os.path.join(locations.pipeline_root, TRAINER_ID,
                                                         "backup"),
            # A path, not the resolver's Model artifact: as an input the last blessed
            # model would change after every push and make the next run retrain.
            **({trainer_settings.WARM_START_FROM_KEY: locations.serving_model_base_path}
               if warm_start else {}),
        },
    )


def _evaluate(example_gen, trainer, evaluation: EvaluationConfig) -> tuple:
    """The Evaluator (the threshold), the last blessed model and the RegressionGate:
    (those nodes, the RegressionGate)."""
    # The raw test split, not Transform's: the model is evaluated as it is served,
    # from PNG bytes through its own Transform graph.
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        example_splits=[TEST_SPLIT],
        eval_config=make_eval_config(evaluation.accuracy_threshold),
    )

    # The baseline is the last model the RegressionGate blessed (the Evaluator's
    # blessings judge the threshold alone).
    latest_blessed_model = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing,
                                       producer_component_id=REGRESSION_GATE_ID,
                                       output_key=REGRESSION_GATE_OUTPUT),
    ).with_id(LATEST_BLESSED_MODEL_RESOLVER_ID)
    regression_gate = RegressionGate(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        evaluation_blessing=evaluator.outputs["blessing"],
        baseline_model=latest_blessed_model.outputs["model"],
        accuracy_threshold=evaluation.accuracy_threshold,
        confidence=evaluation.regression_confidence,
        tolerance=evaluation.regression_tolerance,
    ).with_id(REGRESSION_GATE_ID)

    return [evaluator, latest_blessed_model, regression_gate], regression_gate


def _serving_check(example_gen, trainer, infra_validation_image_tag: Optional[str],
                   serving_load_check: bool) -> tuple:
    """InfraValidator, else the ServingLoadCheck, else nothing: (the nodes, their
    blessing or None)."""
    if infra_validation_image_tag:
        infra_validator = tfx.components.InfraValidator(
            model=trainer.outputs["model"],
            examples=example_gen.outputs["examples"],
            serving_spec=tfx.proto.ServingSpec(
                tensorflow_serving=tfx.proto.TensorFlowServing(
                    tags=[infra_validation_image_tag]),
                local_docker=tfx.proto.LocalDockerConfig()),
            request_spec=tfx.proto.RequestSpec(
                tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
                    signature_names=[EXAMPLES_SIGNATURE]),
                split_name=TEST_SPLIT, num_examples=16),
        )
        return [infra_validator], infra_validator.outputs["blessing"]
    if serving_load_check:
        load_check = ServingLoadCheck(model=trainer.outputs["model"]).with_id(
            SERVING_LOAD_CHECK_ID)
        return [load_check], load_check.outputs[SERVING_LOAD_CHECK_OUTPUT]
    return [], None


def _push(trainer, regression_gate, infra_blessing, locations: Locations):
    # The standard Pusher (saved_model.pb copied last), which also declines to push a
    # model the base path already serves.
    return cifar10_pusher.Pusher(
        model=trainer.outputs["model"],
        model_blessing=regression_gate.outputs[REGRESSION_GATE_OUTPUT],
        infra_blessing=infra_blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=locations.serving_model_base_path)),
    )


def _tflite(example_gen, transform_component, trainer, pusher, training: TrainingConfig,
            tflite: TFLiteConfig, locations: Locations) -> list:
    """TFLiteExport (converted and checked) -> TFLitePusher (beside the pushed version)."""
    tflite_export = TFLiteExport(
        model=trainer.outputs["model"],
        transform_graph=transform_component.outputs["transform_graph"],
        transformed_examples=transform_component.outputs["transformed_examples"],
        examples=example_gen.outputs["examples"],
        training=json.dumps(dataclasses.asdict(training)),
        variants=",".join(tflite.variants),
        max_drop=tflite.max_drop,
        representative_images=tflite.representative_images,
    ).with_id(TFLITE_EXPORT_ID)
    tflite_pusher = TFLitePusher(
        pushed_model=pusher.outputs["pushed_model"],
        tflite_models=tflite_export.outputs[TFLITE_EXPORT_OUTPUT],
        tflite_base_path=tflite_base_path(locations.serving_model_base_path),
    ).with_id(TFLITE_PUSHER_ID)
    return [tflite_export, tflite_pusher]
