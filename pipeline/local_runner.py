"""Runs the pipeline on this machine with TFX's LocalDagRunner or BeamDagRunner.

The data source is resolved (downloaded, extracted) and every batch file validated
before the pipeline starts, so bad input fails in seconds with the file named, and
no component runs or publishes anything.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from typing import Optional, Sequence

import pipeline_config
from components import cifar10_source

log = logging.getLogger(__name__)


def resolve_source(config: pipeline_config.PipelineConfig) -> cifar10_source.DataSource:
    data = config.data
    source = cifar10_source.resolve(data.data_dir, data.cache_dir, data.layout,
                                    data.download_url, data.download_md5)
    counts = cifar10_source.validate(source, data.images_per_file)
    spans = ""
    if source.spans:
        window = training_spans(config, source)
        spans = (f" in spans {list(source.spans)}; training on "
                 f"{'every span' if len(window) == len(source.spans) else f'spans {window}'}")
    print(f"Data: {source.input_base} ({source.layout} layout): {counts['train']} train + "
          f"{counts['test']} test images checked{spans}", flush=True)
    return source


def infra_validation_tag(config: pipeline_config.PipelineConfig):
    """The TF Serving image tag InfraValidator uses, or None (with the reason printed)."""
    setting = config.push.infra_validation
    if setting == "off":
        print("InfraValidator: off (push.infra_validation=off)", flush=True)
        return None
    if setting == "auto":
        from serving.model_server import docker_available
        if not docker_available():
            print("InfraValidator: skipped, no Docker daemon answers (TFX's InfraValidator "
                  "starts TF Serving in Docker); the Evaluator's gate still applies",
                  flush=True)
            return None
    print(f"InfraValidator: on, tensorflow/serving:{config.push.serving_image_tag} in Docker",
          flush=True)
    return config.push.serving_image_tag


def training_spans(config: pipeline_config.PipelineConfig,
                   source: cifar10_source.DataSource) -> list:
    """The spans on disk that the model trains on: the newest N, or all."""
    window = config.retraining.training_spans
    return list(source.spans[-window:] if window else source.spans)


def factory_arguments(config: pipeline_config.PipelineConfig,
                      serving_model_base_path: str) -> dict:
    """The factory's arguments every runner takes from the config alone; each runner
    adds its paths (pipeline root, data, MLMD) and what its orchestrator supports."""
    return dict(
        pipeline_name=config.pipeline_name,
        beam_pipeline_args=config.beam.pipeline_args(),
        training_hyperparameters=dataclasses.asdict(config.training),
        serving_model_base_path=serving_model_base_path,
        accuracy_threshold=config.evaluation.accuracy_threshold,
        max_accuracy_drop=config.evaluation.max_accuracy_drop,
        images_per_file=config.data.images_per_file,
        warm_start_from=serving_model_base_path if config.retraining.warm_start else None,
        transform_disable_statistics=config.transform.disable_statistics,
        enable_cache=config.enable_cache,
    )


def build_pipeline(config: pipeline_config.PipelineConfig,
                   source: cifar10_source.DataSource, span: Optional[int] = None,
                   infra_validation: bool = True, pin_span: bool = True):
    """The pipeline for this config and data. With spans, ExampleGen ingests `span`
    (default: the latest on disk; with `pin_span=False`, the latest when the run
    starts, as a scheduler that parses the pipeline long before running it needs)
    and the Trainer reads the span window. `infra_validation=False` leaves
    InfraValidator out whatever the config says."""
    from pipeline.pipeline import create_pipeline  # TFX takes ~30 s to import
    if source.spans and span is None and pin_span:
        span = source.spans[-1]
    return create_pipeline(
        pipeline_root=os.path.abspath(config.pipeline_root),
        input_base=source.input_base,
        train_pattern=source.train_pattern,
        test_pattern=source.test_pattern,
        metadata_path=os.path.abspath(config.metadata_path),
        example_gen_span=span,
        training_span_window=config.retraining.training_spans if source.spans else None,
        infra_validation_serving_tag=infra_validation_tag(config) if infra_validation else None,
        **factory_arguments(config, os.path.abspath(config.serving_model_base_path)),
    )


def _orchestrator(name: str):
    if name == "local":
        from tfx.orchestration.local.local_dag_runner import LocalDagRunner
        return LocalDagRunner()
    if name == "beam":
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
        return BeamDagRunner()
    raise pipeline_config.ConfigError(
        f"orchestrator: unknown orchestrator {name!r} (known: local, beam)")


def run(config: pipeline_config.PipelineConfig, to_nodes: Sequence[str] = ()) -> dict:
    """Runs the pipeline (only `to_nodes` and their ancestors when given); returns the
    run summary. Raises on any failure."""
    source = resolve_source(config)
    orchestrator = _orchestrator(config.orchestrator)
    os.makedirs(config.output_dir, exist_ok=True)
    from pipeline import run_lock
    with run_lock.exclusive(config.output_dir, config.pipeline_name):
        return _run_locked(config, source, orchestrator, to_nodes)


def ingest_earlier_spans(config, source, orchestrator) -> None:
    """Runs ExampleGen alone for each span of the window before the latest, so that a
    first run over several spans, or a window that grew, trains on all of them. A span
    ingested before, with the same files, is a cache hit."""
    from tfx.orchestration import pipeline as pipeline_lib
    from pipeline.pipeline import EXAMPLE_GEN_ID
    for span in training_spans(config, source)[:-1]:
        print(f"Ingesting span {span} (cached if already ingested and unchanged)",
              flush=True)
        orchestrator.run(build_pipeline(config, source, span, infra_validation=False),
                         run_options=pipeline_lib.RunOptions(to_nodes=[EXAMPLE_GEN_ID]))


def _run_locked(config, source, orchestrator, to_nodes) -> dict:
    started = time.monotonic()
    if source.spans:
        ingest_earlier_spans(config, source, orchestrator)
    tfx_pipeline = build_pipeline(config, source)
    print(f"Running {config.pipeline_name} ({len(tfx_pipeline.components)} components) "
          f"with {type(orchestrator).__name__}, Beam args: "
          f"{' '.join(config.beam.pipeline_args())}", flush=True)
    if to_nodes:
        from tfx.orchestration import pipeline as pipeline_lib
        orchestrator.run(tfx_pipeline, run_options=pipeline_lib.RunOptions(
            to_nodes=list(to_nodes)))
    else:
        orchestrator.run(tfx_pipeline)
    from pipeline import summary
    run_summary = summary.latest_run(os.path.abspath(config.metadata_path),
                                     config.pipeline_name) or {}
    validator = run_summary.get("components", {}).get("ExampleValidator", {})
    if "anomalies" in validator.get("outputs", {}):
        run_summary["anomalies"] = summary.anomalies_per_split(validator["outputs"]["anomalies"])
    from pipeline import decision
    model_decision = decision.from_run_summary(run_summary)
    if model_decision is not None:
        run_summary["decision"] = model_decision
    run_summary = {
        "profile": config.profile,
        "pipeline": config.pipeline_name,
        "orchestrator": config.orchestrator,
        "seconds": round(time.monotonic() - started, 1),
        "data": source.input_base,
        "metadata": os.path.abspath(config.metadata_path),
        **run_summary,
    }
    return run_summary


def print_summary(run_summary: dict, stream=None) -> None:
    stream = stream or sys.stdout
    print("\nArtifacts of this run:", file=stream)
    for component, details in run_summary.get("components", {}).items():
        print(f"  {component} [{details['state']}, {details['seconds']} s]", file=stream)
        for key, uri in details["outputs"].items():
            print(f"    {key}: {uri}", file=stream)
    if "decision" in run_summary:
        from pipeline import decision
        decision.print_decision(run_summary["decision"], stream)
    print(json.dumps(run_summary, sort_keys=True), file=stream, flush=True)
