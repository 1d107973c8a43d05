"""The one pipeline factory every runner (local, Beam, Airflow, Kubeflow) calls.

Every path, pattern and Beam argument is a parameter; nothing here reads a profile,
an environment variable or the command line.
"""

from __future__ import annotations

import os
from typing import List, Optional

from tfx import v1 as tfx
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import metadata
from tfx.proto import example_gen_pb2, range_config_pb2, transform_pb2

from components import cifar10_example_gen, evaluation, pusher as cifar10_pusher, span_window

PREPROCESSING_FN = "components.transform.preprocessing_fn"
RUN_FN = "components.trainer.run_fn"
TRAIN_SPLIT = "train"
TEST_SPLIT = "test"
EXAMPLE_GEN_ID = "Cifar10ExampleGen"


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    input_base: str,
    train_pattern: str,
    test_pattern: str,
    metadata_path: Optional[str],
    beam_pipeline_args: List[str],
    training_hyperparameters: dict,
    serving_model_base_path: str,
    accuracy_threshold: float,
    max_accuracy_drop: float,
    images_per_file: Optional[int] = None,
    example_gen_span: Optional[int] = None,
    training_span_window: Optional[int] = None,
    warm_start_from: Optional[str] = None,
    infra_validation_serving_tag: Optional[str] = None,
    preprocessing_fn: str = PREPROCESSING_FN,
    run_fn: str = RUN_FN,
    transform_disable_statistics: bool = True,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """CIFAR-10 ingestion -> statistics, schema, validation -> Z-score Transform ->
    Trainer -> Evaluator (accuracy gate, no regression on the last blessed model) ->
    Pusher.

    Args:
      input_base: directory (local or remote file system) the split patterns are
        relative to. A pattern may contain `{SPAN}`; the driver then reads the latest span.
      train_pattern, test_pattern: globs for the train and test batch files.
      metadata_path: SQLite MLMD file; None leaves the connection to the orchestrator
        (Kubeflow, Vertex).
      beam_pipeline_args: passed to every Beam-powered component.
      images_per_file: keep the first N images of each batch file (small profiles).
      example_gen_span: with `{SPAN}` patterns, the span ExampleGen ingests; None: the
        latest span, found by ExampleGen's driver when the run starts.
      training_span_window: with `{SPAN}` patterns, train on the newest N spans
        ExampleGen has ingested in this and earlier runs (0: every span); None: train on
        this run's ExampleGen output only (unspanned data, or orchestrators whose
        compiler supports only the standard resolver strategies, like Kubeflow V2).
      warm_start_from: a TF Serving model base path; the Trainer starts from the
        weights of its newest version (the last pushed model) when there is one.
      infra_validation_serving_tag: a `tensorflow/serving` image tag: InfraValidator
        loads the model in that TF Serving (local Docker) and sends it test examples
        before the Pusher may push it; None: no InfraValidator.
      training_hyperparameters: the Trainer's settings, a JSON-able dict
        (`dataclasses.asdict` of `components.training_config.TrainingConfig`).
      serving_model_base_path: TF Serving's model base path; a blessed model is
        pushed to `<serving_model_base_path>/<unix-time version>/`.
      accuracy_threshold: the least overall test accuracy that blesses a model.
      max_accuracy_drop: the most the accuracy may fall below the last blessed
        model's (0: at least as good).
      preprocessing_fn, run_fn: fully qualified names of the Transform and Trainer
        functions.
    """
    range_config = None
    if example_gen_span is not None:
        range_config = range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
            start_span_number=example_gen_span, end_span_number=example_gen_span))
    example_gen = FileBasedExampleGen(
        input_base=input_base,
        range_config=range_config,
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name=TRAIN_SPLIT, pattern=train_pattern),
            example_gen_pb2.Input.Split(name=TEST_SPLIT, pattern=test_pattern),
        ]),
        custom_config=cifar10_example_gen.make_custom_config(images_per_file),
        custom_executor_spec=executor_spec.BeamExecutorSpec(cifar10_example_gen.Executor),
    ).with_id(EXAMPLE_GEN_ID)

    statistics_gen = tfx.components.StatisticsGen(
        examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"])

    components = [example_gen, statistics_gen, schema_gen, example_validator]
    # Statistics, schema and validation cover the newly ingested span; earlier spans
    # were validated when they arrived.
    training_examples = example_gen.outputs["examples"]
    if training_span_window is not None:
        # Earlier runs' spans are not outputs of this run: a plain Channel reads every
        # Examples artifact ExampleGen ever published in this pipeline.
        span_resolver = tfx.dsl.Resolver(
            strategy_class=span_window.LatestSpansStrategy,
            config={"num_spans": training_span_window},
            examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples,
                                     producer_component_id=example_gen.id,
                                     output_key="examples"),
        ).with_id("TrainingSpansResolver")
        span_resolver.add_upstream_node(example_gen)
        components.append(span_resolver)
        training_examples = span_resolver.outputs["examples"]

    # Statistics come from the train split only; the test split is transformed with
    # them, exactly as a served image will be.
    transform = tfx.components.Transform(
        examples=training_examples,
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=preprocessing_fn,
        splits_config=transform_pb2.SplitsConfig(
            analyze=[TRAIN_SPLIT], transform=[TRAIN_SPLIT, TEST_SPLIT]),
        disable_statistics=transform_disable_statistics,
    )

    # The test split is the eval split, as in the recipe: no validation set is carved
    # out of the 50,000 training images.
    trainer = tfx.components.Trainer(
        run_fn=run_fn,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=[TRAIN_SPLIT]),
        eval_args=tfx.proto.EvalArgs(splits=[TEST_SPLIT]),
        custom_config={
            "training": training_hyperparameters,
            # Backups outlive a killed execution so that its retry resumes.
            "backup_root": os.path.join(pipeline_root, "Trainer", "backup"),
            # A path, not the resolver's Model artifact: as an input the last blessed
            # model would change after every push and make the next run retrain.
            **({"warm_start_from": warm_start_from} if warm_start_from else {}),
        },
    )

    latest_blessed_model = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("LatestBlessedModelResolver")

    # The raw test split, not Transform's: the model is evaluated as it is served,
    # from PNG bytes through its own Transform graph.
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=latest_blessed_model.outputs["model"],
        example_splits=[TEST_SPLIT],
        eval_config=evaluation.make_eval_config(accuracy_threshold, max_accuracy_drop),
    )

    components += [transform, trainer, latest_blessed_model, evaluator]
    infra_blessing = None
    if infra_validation_serving_tag:
        infra_validator = tfx.components.InfraValidator(
            model=trainer.outputs["model"],
            examples=example_gen.outputs["examples"],
            serving_spec=tfx.proto.ServingSpec(
                tensorflow_serving=tfx.proto.TensorFlowServing(
                    tags=[infra_validation_serving_tag]),
                local_docker=tfx.proto.LocalDockerConfig()),
            request_spec=tfx.proto.RequestSpec(
                tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
                    signature_names=[evaluation.EVAL_SIGNATURE]),
                split_name=TEST_SPLIT, num_examples=16),
        )
        components.append(infra_validator)
        infra_blessing = infra_validator.outputs["blessing"]

    # The standard Pusher (saved_model.pb copied last), which also declines to push a
    # model the base path already serves.
    pusher = cifar10_pusher.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=infra_blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=serving_model_base_path)),
    )

    components.append(pusher)
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=(
            metadata.sqlite_metadata_connection_config(metadata_path)
            if metadata_path else None),
        beam_pipeline_args=beam_pipeline_args,
    )
