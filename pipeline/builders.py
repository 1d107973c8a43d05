"""From a `PipelineConfig` to the factory's arguments, once per way the pipeline runs.

Every runner builds its pipeline here, so the translation from settings to
`create_pipeline` is written once; what differs between runners is where the
pipeline keeps its state (`Locations`) and what ExampleGen ingests (`Ingestion`):

- `local_pipeline`: this machine, the newest span on disk (`python -m pipeline run`);
- `span_ingestion_pipeline`: the same, with ExampleGen on an earlier span of the
  training window, run up to ExampleGen only;
- `scheduled_pipeline`: Airflow, parsed long before it runs: ExampleGen finds the
  newest span when each run starts;
- `kubeflow_pipeline`: Kubeflow Pipelines v2 / Vertex: cluster paths, the cluster's
  MLMD, and the newest span only (the V2 compiler knows only TFX's own resolvers);
  the Trainer's and the Evaluator's pods ask for the configured CPU, memory and
  accelerator.
"""

from __future__ import annotations

import os
from typing import Optional

from tfx import v1 as tfx

import pipeline_config
from components.data.source import DataSource
from components.uris import absolute
from pipeline.pipeline import EVALUATOR_ID, TRAINER_ID, Ingestion, Locations, create_pipeline


def _create(config: pipeline_config.PipelineConfig, locations: Locations,
            ingestion: Ingestion, infra_validation_image_tag: Optional[str] = None
            ) -> tfx.dsl.Pipeline:
    return create_pipeline(
        pipeline_name=config.pipeline_name,
        locations=locations,
        ingestion=ingestion,
        beam=config.beam,
        transform=config.transform,
        validation=config.validation,
        training=config.training,
        evaluation=config.evaluation,
        tflite=config.tflite,
        warm_start=config.retraining.warm_start,
        infra_validation_image_tag=infra_validation_image_tag,
        serving_load_check=config.push.infra_validation != "off",
        enable_cache=config.enable_cache,
    )


def _local_locations(config: pipeline_config.PipelineConfig) -> Locations:
    return Locations(pipeline_root=absolute(config.pipeline_root),
                     serving_model_base_path=absolute(config.serving_model_base_path),
                     metadata_path=os.path.abspath(config.metadata_path))


def _ingestion(config: pipeline_config.PipelineConfig, source: DataSource,
               span: Optional[int]) -> Ingestion:
    return Ingestion(
        input_base=source.input_base, train_pattern=source.train_pattern,
        test_pattern=source.test_pattern, images_per_file=config.data.images_per_file,
        span=span,
        training_spans=config.retraining.training_spans if source.spans else None)


def local_pipeline(config: pipeline_config.PipelineConfig, source: DataSource,
                   infra_validation_image_tag: Optional[str] = None) -> tfx.dsl.Pipeline:
    """The whole pipeline on this machine; with spans, ExampleGen ingests the newest
    span on disk and the Trainer reads the span window."""
    newest_span = source.spans[-1] if source.spans else None
    return _create(config, _local_locations(config), _ingestion(config, source, newest_span),
                   infra_validation_image_tag)


def span_ingestion_pipeline(config: pipeline_config.PipelineConfig, source: DataSource,
                            span: int) -> tfx.dsl.Pipeline:
    """The same pipeline with ExampleGen pinned to `span`: run it up to the DataGate
    (`RunOptions(to_nodes=[DATA_GATE_ID])`) to ingest an earlier span of the window.
    Same pipeline, same node ids, so the ingested span is found by later runs and an
    unchanged span is a cache hit."""
    return _create(config, _local_locations(config), _ingestion(config, source, span))


def scheduled_pipeline(config: pipeline_config.PipelineConfig,
                       source: DataSource) -> tfx.dsl.Pipeline:
    """For a scheduler that parses the pipeline long before each run: ExampleGen
    ingests the newest span when the run starts. Nothing is probed at parse time, so
    InfraValidator is in only when asked for outright (`push.infra_validation=docker`);
    under `auto` the ServingLoadCheck loads the model as TF Serving does instead."""
    image_tag = (config.push.serving_image_tag if config.push.infra_validation == "docker"
                 else None)
    return _create(config, _local_locations(config), _ingestion(config, source, None),
                   image_tag)


def kubeflow_pipeline(config: pipeline_config.PipelineConfig,
                      source: DataSource) -> tfx.dsl.Pipeline:
    """For Kubeflow Pipelines v2 / Vertex: the cluster's paths and MLMD; the model
    trains on the span this run ingests, the Trainer and the Evaluator with the
    resources `config.kubeflow` asks for."""
    kubeflow = config.kubeflow
    locations = Locations(
        pipeline_root=kubeflow.pipeline_root,
        serving_model_base_path=os.path.join(kubeflow.serving_model_dir,
                                             config.push.model_name))
    ingestion = Ingestion(
        input_base=source.input_base, train_pattern=source.train_pattern,
        test_pattern=source.test_pattern, images_per_file=config.data.images_per_file)
    pipeline = _create(config, locations, ingestion)
    for component in pipeline.components:
        if component.id in _KUBEFLOW_RESOURCE_SETTINGS:
            component.with_platform_config(_kubeflow_resources(
                kubeflow, _KUBEFLOW_RESOURCE_SETTINGS[component.id]))
    return pipeline


# The components whose pods get the resources of a `kubeflow.<prefix>_*` setting.
_KUBEFLOW_RESOURCE_SETTINGS = {TRAINER_ID: "trainer", EVALUATOR_ID: "evaluator"}


def _kubeflow_resources(kubeflow: pipeline_config.KubeflowConfig, prefix: str):
    """The ResourceSpec the Kubeflow V2 compiler copies into a component's container
    spec: CPU and memory requests and limits, and the accelerator."""
    from kfp.pipeline_spec import pipeline_spec_pb2

    resources = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
        cpu_request=getattr(kubeflow, f"{prefix}_cpu_request"),
        cpu_limit=getattr(kubeflow, f"{prefix}_cpu_limit"),
        memory_request=getattr(kubeflow, f"{prefix}_memory_request_gb"),
        memory_limit=getattr(kubeflow, f"{prefix}_memory_limit_gb"))
    accelerator = kubeflow.accelerator(prefix)
    if accelerator:
        resources.accelerator.type, resources.accelerator.count = accelerator
    return resources
