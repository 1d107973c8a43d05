"""Runs the pipeline on this machine with TFX's LocalDagRunner or BeamDagRunner.

The data source is resolved (downloaded, extracted) and every batch file validated
before the pipeline starts, so bad input fails in seconds with the file named, and
no component runs or publishes anything.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional, Sequence

import pipeline_config
from components import console
from components.contract import TEST_SPLIT, TRAIN_SPLIT
from components.data import source as data_source


def resolve_source(config: pipeline_config.PipelineConfig) -> data_source.DataSource:
    data = config.data
    source = data_source.resolve(data.data_dir, data.cache_dir, data.layout,
                                 data.download_url, data.download_md5)
    counts = data_source.validate(source, data.images_per_file)
    spans = ""
    if source.spans:
        window = training_spans(config, source)
        spans = (f" in spans {list(source.spans)}; training on "
                 f"{'every span' if len(window) == len(source.spans) else f'spans {window}'}")
    console.report(f"Data: {source.input_base} ({source.layout} layout): "
                    f"{counts[TRAIN_SPLIT]} train + {counts[TEST_SPLIT]} test images "
                    f"checked{spans}")
    return source


def docker_answers() -> bool:
    """Whether TFX's InfraValidator can reach a Docker daemon to run TF Serving in: asked
    the way it connects (the Docker SDK's client with its default settings)."""
    import docker
    import requests

    try:
        client = docker.DockerClient(timeout=20)
        try:
            return bool(client.ping())
        finally:
            client.close()
    # No socket, no daemon, or it refused (ping's connection errors are requests').
    except (docker.errors.DockerException, requests.exceptions.RequestException):
        return False


def infra_validation_tag(config: pipeline_config.PipelineConfig) -> Optional[str]:
    """The TF Serving image tag InfraValidator uses, or None (with the reason printed).
    Decided once per command-line run, never when a scheduler parses the pipeline."""
    setting = config.push.infra_validation
    if setting == "off":
        console.report("InfraValidator: off (push.infra_validation=off); nothing checks "
                        "that TF Serving can run the model before it is pushed")
        return None
    if setting == "in_process":
        console.report("InfraValidator: the ServingLoadCheck loads the model as TF "
                        "Serving does (push.infra_validation=in_process)")
        return None
    if setting == "auto" and not docker_answers():
        console.report("InfraValidator: skipped, no Docker daemon answers (TFX's "
                        "InfraValidator starts TF Serving in Docker); the ServingLoadCheck "
                        "loads the model as TF Serving does instead")
        return None
    console.report(f"InfraValidator: on, tensorflow/serving:{config.push.serving_image_tag} "
                    f"in Docker")
    return config.push.serving_image_tag


def training_spans(config: pipeline_config.PipelineConfig,
                   source: data_source.DataSource) -> list:
    """The spans on disk that the model trains on: the newest N, or all."""
    window = config.retraining.training_spans
    return list(source.spans[-window:] if window else source.spans)


def _orchestrator(name: str):
    if name == "local":
        from tfx.orchestration.local.local_dag_runner import LocalDagRunner
        return LocalDagRunner()
    if name == "beam":
        from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
        return BeamDagRunner()
    raise pipeline_config.ConfigError(
        f"orchestrator: unknown orchestrator {name!r} (known: local, beam)")


def run(config: pipeline_config.PipelineConfig, to_nodes: Sequence[str] = (),
        on_start: Optional[Callable[[], None]] = None) -> dict:
    """Runs the pipeline (only `to_nodes` and their ancestors when given); returns the
    run summary. Raises on any failure; TrainingDeviceError before any component when
    TensorFlow cannot train where training.device says. `on_start` is called once the
    settings and the data are checked and the output directory's lock is taken."""
    from components.training.device import check_training_device
    check_training_device(config.training.device)
    source = resolve_source(config)
    orchestrator = _orchestrator(config.orchestrator)
    os.makedirs(config.output_dir, exist_ok=True)
    from pipeline import run_lock
    with run_lock.exclusive(config.output_dir, config.pipeline_name):
        if on_start is not None:
            on_start()
        from pipeline import staging
        return _run_locked(staging.staged(config), source, orchestrator, to_nodes)


def ingest_earlier_spans(config, source, orchestrator) -> None:
    """Runs the pipeline up to the DataGate for each span of the window before the
    latest, oldest first, so that a first run over several spans, or a window that
    grew, trains on all of them, each validated (and compared with the span before it).
    A span ingested before, with the same files, is a cache hit. An earlier span with
    anomalies does not stop the run: the span window leaves out what the DataGate
    stopped, and it was reported when it arrived (or is reported here)."""
    from tfx.orchestration import pipeline as pipeline_lib

    from pipeline.builders import span_ingestion_pipeline  # TFX takes ~30 s to import
    from pipeline.pipeline import DATA_GATE_ID
    for span in training_spans(config, source)[:-1]:
        console.report(f"Ingesting and validating span {span} (cached if already done "
                        f"and unchanged)")
        try:
            orchestrator.run(span_ingestion_pipeline(config, source, span),
                             run_options=pipeline_lib.RunOptions(to_nodes=[DATA_GATE_ID]))
        except Exception as error:
            from components.validation.data_gate import stopped_by_data_gate
            if not stopped_by_data_gate(error):
                raise
            console.report(f"Span {span} has data anomalies: it is left out of training "
                            f"({error})")


def _run_locked(config, source, orchestrator, to_nodes) -> dict:
    from pipeline.builders import local_pipeline  # TFX takes ~30 s to import

    started = time.monotonic()
    if source.spans:
        ingest_earlier_spans(config, source, orchestrator)
    tfx_pipeline = local_pipeline(config, source, infra_validation_tag(config))
    console.report(f"Running {config.pipeline_name} ({len(tfx_pipeline.components)} "
                    f"components) with {type(orchestrator).__name__}, Beam args: "
                    f"{' '.join(config.beam.pipeline_args())}")
    if to_nodes:
        from tfx.orchestration import pipeline as pipeline_lib
        orchestrator.run(tfx_pipeline, run_options=pipeline_lib.RunOptions(
            to_nodes=list(to_nodes)))
    else:
        orchestrator.run(tfx_pipeline)
    from pipeline import summary
    return {
        "profile": config.profile,
        "pipeline": config.pipeline_name,
        "orchestrator": config.orchestrator,
        "seconds": round(time.monotonic() - started, 1),
        "data": source.input_base,
        "metadata": os.path.abspath(config.metadata_path),
        **summary.run_report(os.path.abspath(config.metadata_path), config.pipeline_name),
    }
