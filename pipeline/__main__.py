"""Command line: `python -m pipeline run --profile smoke --data-dir D --output-dir O`.

Flags this command does not know (`--project=...`, `--temp_location=...`) are passed
to Beam unchanged, so a remote runner is one `--runner=DataflowRunner ...` away.
Exit status: 0 on success, 2 for bad input or settings (a GPU that TensorFlow cannot
use included), 1 when the pipeline failed, 3 when another run holds the output
directory's lock (nothing was done), 4 when data validation found anomalies and
stopped the run before Transform (nothing trained or pushed).

Every run that got as far as a component, failed or blocked ones included, writes its
report, `<output dir>/reports/<run id>/index.html`; `python -m pipeline report
--output-dir O --profile P` writes the latest run's report again and runs nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
import warnings
from typing import Optional

# Nothing imported here imports TensorFlow: its runtime settings depend on the config
# (training.device) and must be in the environment before it loads.
import pipeline_config
from components.data.cifar10_format import Cifar10DataError
from components.training import runtime
from pipeline.run_lock import RunLockedError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the TFX pipeline")
    run.add_argument("--profile", default="full", choices=sorted(pipeline_config.PROFILES))
    run.add_argument("--data-dir", help="CIFAR-10 directory, span root or tarball; "
                     "omitted: download the official archive into the cache")
    run.add_argument("--output-dir", help="where pipeline_root/ and metadata.sqlite go")
    run.add_argument("--cache-dir", help="where downloads and extracted archives go")
    run.add_argument("--orchestrator", choices=["local", "beam"],
                     help="LocalDagRunner (default) or TFX's BeamDagRunner")
    run.add_argument("--runner", help="Beam runner, e.g. DataflowRunner, FlinkRunner")
    run.add_argument("--to-node", dest="to_nodes", action="append", default=[],
                     metavar="NODE", help="run only NODE and its ancestors, e.g. Transform")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="SECTION.FIELD=VALUE", help="override a config field")
    evaluate = commands.add_parser(
        "evaluate", help="accuracy and per-class table of an exported model on a test split")
    evaluate.add_argument("--model", required=True,
                          help="SavedModel dir, Trainer model artifact or pushed model dir")
    evaluate.add_argument("--data-dir", required=True,
                          help="CIFAR-10 directory or tarball holding a test batch")
    evaluate.add_argument("--cache-dir", default=None)
    evaluate.add_argument("--limit", type=int, help="first N images of the test batch")
    report = commands.add_parser(
        "report", help="write the latest run's report again from ML Metadata (runs nothing)")
    report.add_argument("--profile", default="full", choices=sorted(pipeline_config.PROFILES),
                        help="the profile the run used (it names the pipeline)")
    report.add_argument("--output-dir", help="the run's output directory")
    infer = commands.add_parser(
        "infer-schema", help="write the schema TFDV infers from the latest run's "
        "statistics, to compare with the reviewed components/validation/schema.pbtxt")
    infer.add_argument("--profile", default="full", choices=sorted(pipeline_config.PROFILES),
                       help="the profile the run used (it names the pipeline)")
    infer.add_argument("--output-dir", help="the run's output directory")
    infer.add_argument("--out", help="where to write it (default: "
                       "<output dir>/inferred_schema.pbtxt)")
    return parser


def _config_from_args(args, beam_args) -> pipeline_config.PipelineConfig:
    overrides = []
    for flag, field in (("data_dir", "data.data_dir"), ("output_dir", "output_dir"),
                        ("cache_dir", "data.cache_dir"), ("orchestrator", "orchestrator"),
                        ("runner", "beam.runner")):
        if getattr(args, flag) is not None:
            overrides.append(f"{field}={getattr(args, flag)}")
    config = pipeline_config.load(args.profile, tuple(overrides + args.overrides))
    return pipeline_config.with_beam_args(config, beam_args)


# LocalDagRunner says "Component X is running.", BeamDagRunner "node X is running.".
_PROGRESS_LINE = re.compile(r"(Component|node) \S+ is (running|finished)|failed", re.I)


# Warnings TFX repeats on every run that call for no action: a query option of the
# blessed-model resolver that the local orchestrator does not support; the resolver
# still returns the last blessed model (tests/pipeline/test_pipeline_e2e.py checks it).
_NOISE = ("ArtifactQuery.property_predicate is not supported",
          # A partial run (span ingestion, --to-node) with no earlier run to link to.
          "new pipeline run context")


def _quiet_logs() -> None:
    """Keeps TFX's per-component progress lines and errors, drops the rest."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import absl.logging
    absl.logging.set_verbosity(absl.logging.INFO)
    # A logger-level filter: TFX's records reach whichever handler Beam installs too.
    logging.getLogger("absl").addFilter(
        lambda record: (record.levelno >= logging.WARNING
                        and not any(noise in record.getMessage() for noise in _NOISE))
        or bool(_PROGRESS_LINE.search(record.getMessage())))


def _evaluate(args, extra_args) -> int:
    from components.data import source as data_source
    from pipeline import evaluate

    if extra_args:
        print(f"error: unexpected arguments: {' '.join(extra_args)}", file=sys.stderr)
        return 2
    try:
        source = data_source.resolve(args.data_dir,
                                     args.cache_dir or data_source.DEFAULT_CACHE_DIR)
        evaluate.evaluate(args.model, source, limit=args.limit)
    except Cifar10DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


def _write_report(config, run_summary: dict, started_ms: Optional[int] = None
                  ) -> Optional[str]:
    """Writes the latest run's report (only a run started at or after `started_ms`)
    and adds its path to `run_summary`. A failure to write it is printed and never
    changes the run's exit status."""
    try:
        from pipeline.report.writer import write_report
        index = write_report(os.path.abspath(config.metadata_path), config.pipeline_name,
                             config.output_dir, config.profile, started_ms)
    except Exception as error:  # the run's own outcome matters more than its report
        print(f"warning: the run report was not written: {type(error).__name__}: {error}",
              file=sys.stderr)
        return None
    if index:
        run_summary["report"] = index
    return index


def _recorded_run_config(args, extra_args):
    """The config of an earlier run named by --profile and --output-dir, for the
    commands that read a run back (report, infer-schema); None after printing why."""
    if extra_args:
        print(f"error: unexpected arguments: {' '.join(extra_args)}", file=sys.stderr)
        return None
    try:
        return pipeline_config.load(args.profile, (f"output_dir={args.output_dir}",)
                                    if args.output_dir else ())
    except pipeline_config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def _report(args, extra_args) -> int:
    config = _recorded_run_config(args, extra_args)
    if config is None:
        return 2
    from pipeline.report.writer import write_report
    try:
        index = write_report(os.path.abspath(config.metadata_path), config.pipeline_name,
                             config.output_dir, config.profile)
    except Exception as error:  # an artifact the report reads is missing or unreadable
        print(f"error: the report was not written: {type(error).__name__}: {error}",
              file=sys.stderr)
        return 1
    if index is None:
        print(f"error: {os.path.abspath(config.metadata_path)}: no run of pipeline "
              f"{config.pipeline_name} recorded (is --profile the run's?)", file=sys.stderr)
        return 2
    print(f"Report: {index}")
    return 0


def _infer_schema(args, extra_args) -> int:
    from pipeline import schema

    config = _recorded_run_config(args, extra_args)
    if config is None:
        return 2
    statistics_uri = (schema.latest_statistics_uri(os.path.abspath(config.metadata_path),
                                                   config.pipeline_name)
                      if os.path.exists(config.metadata_path) else None)
    if statistics_uri is None:
        print(f"error: {os.path.abspath(config.metadata_path)}: no statistics of pipeline "
              f"{config.pipeline_name} recorded (run it first; is --profile the run's?)",
              file=sys.stderr)
        return 2
    written = schema.write_inferred_schema(
        statistics_uri, args.out or os.path.join(config.output_dir, "inferred_schema.pbtxt"))
    from pipeline.pipeline import DEFAULT_SCHEMA_FILE
    print(f"Inferred from {statistics_uri}:\n  {written}\nCompare with the reviewed "
          f"schema:\n  diff {os.path.relpath(DEFAULT_SCHEMA_FILE)} {written}")
    return 0


EXIT_DATA_ANOMALIES = 4


def main(argv=None) -> int:
    # google-api-core warns once per Vertex AI module that Python 3.10 is old: TFX 1.16
    # supports nothing newer, so the dozens of lines carry no information.
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    args, beam_args = _parser().parse_known_args(argv)
    _quiet_logs()
    if args.command == "evaluate":
        runtime.prepare_tensorflow()
        return _evaluate(args, beam_args)
    if args.command == "report":
        runtime.prepare_tensorflow()
        return _report(args, beam_args)
    if args.command == "infer-schema":
        runtime.prepare_tensorflow()
        return _infer_schema(args, beam_args)
    try:
        config = _config_from_args(args, beam_args)
    except pipeline_config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    runtime.prepare_tensorflow(config.training.device)
    from components.training.device import TrainingDeviceError
    from pipeline import local_runner
    started_ms = int(time.time() * 1000)
    try:
        run_summary = local_runner.run(config, args.to_nodes)
    except (Cifar10DataError, pipeline_config.ConfigError, TrainingDeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunLockedError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except Exception as error:  # a component failed: TFX has logged the traceback
        from components.validation.data_gate import stopped_by_data_gate
        if stopped_by_data_gate(error):
            from pipeline import summary
            try:
                blocked = summary.run_report(os.path.abspath(config.metadata_path),
                                             config.pipeline_name)
                _write_report(config, blocked, started_ms)
                summary.print_report(blocked)
            except Exception as report_error:  # the exit status must still say why
                print(f"warning: the run summary could not be read: "
                      f"{type(report_error).__name__}: {report_error}", file=sys.stderr)
            print(f"error: data validation stopped the run: {error}", file=sys.stderr)
            return EXIT_DATA_ANOMALIES
        print(f"error: pipeline failed: {type(error).__name__}: {error}", file=sys.stderr)
        index = _write_report(config, {}, started_ms)
        if index:
            print(f"Report: {index}")
        return 1
    from pipeline import summary
    _write_report(config, run_summary, started_ms)
    summary.print_report(run_summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
