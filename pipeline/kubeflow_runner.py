"""Compiles the pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines.

    python -m pipeline.kubeflow_runner --profile full --output cifar10-resnet9.json \\
        --set kubeflow.image=gcr.io/P/cifar10-tfx:1 --set kubeflow.data_root=gs://B/spans \\
        --set kubeflow.pipeline_root=gs://B/root --set kubeflow.serving_model_dir=gs://B/serving \\
        --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp

The same factory as the local and Airflow runners, with what the Kubeflow V2 compiler
supports: MLMD is the cluster's (no SQLite path); ExampleGen ingests the latest span
when the run starts and the model trains on it (the compiler knows only TFX's own
resolver strategies, so the multi-span window is a local/Airflow feature); no
InfraValidator (the V2 compiler does not support it): the ServingLoadCheck loads the
model as TF Serving does before the Pusher may push it. Flags this command does not
know are Beam arguments, passed to every Beam-powered component.

Submit the JSON with the KFP client or `aiplatform.PipelineJob(template_path=...)`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import pipeline_config
from components.data import source as data_source


def compile_pipeline(config: pipeline_config.PipelineConfig, output_path: str) -> dict:
    """Writes the pipeline job spec JSON to `output_path` (whole or not at all) and
    returns it."""
    kubeflow = config.kubeflow
    source = data_source.remote(kubeflow.data_root, config.data.layout,
                                kubeflow.data_in_spans)
    # TFX takes ~30 s to import: after the settings are known to be good.
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipeline.builders import kubeflow_pipeline

    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(
            default_image=config.kubeflow.image))
    job_spec = runner.run(kubeflow_pipeline(config, source), write_out=False)
    output_dir = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(output_dir, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=output_dir, suffix=".part",
                                     delete=False) as partial:
        json.dump(job_spec, partial, indent=1, sort_keys=True)
    os.replace(partial.name, output_path)
    return job_spec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.kubeflow_runner",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="full", choices=sorted(pipeline_config.PROFILES))
    parser.add_argument("--output", required=True, help="pipeline job spec JSON to write")
    parser.add_argument("--runner", help="Beam runner: DataflowRunner, FlinkRunner, ...")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="SECTION.FIELD=VALUE")
    args, beam_args = parser.parse_known_args(argv)
    try:
        overrides = ((f"beam.runner={args.runner}",) if args.runner else ()) + tuple(
            args.overrides)
        config = pipeline_config.with_beam_args(
            pipeline_config.load(args.profile, overrides), beam_args)
        job_spec = compile_pipeline(config, args.output)
    except (pipeline_config.ConfigError, data_source.Cifar10DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tasks = job_spec["pipelineSpec"]["root"]["dag"]["tasks"]
    print(f"Compiled {config.pipeline_name} ({len(tasks)} tasks: {', '.join(sorted(tasks))}) "
          f"for image {config.kubeflow.image}: {os.path.abspath(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
