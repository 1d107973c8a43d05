"""Command line: `python -m pipeline run --profile smoke --data-dir D --output-dir O`.

Flags this command does not know (`--flink_master=...`, `--environment_type=...`) are
passed to Beam unchanged, so a remote runner is one `--runner=FlinkRunner ...` away
(the project's code is staged for its workers: pipeline/staging.py).
Exit status: 0 on success, 2 for bad input or settings (a GPU that TensorFlow cannot
use included), 1 when the pipeline failed, 3 when another run holds the output
directory's lock (nothing was done), 4 when data validation found anomalies and
stopped the run before Transform (nothing trained or pushed).

The console shows the data check, each component's start and end (state, seconds, a
key figure), the Trainer's epochs, the decision and the summary; everything else
(TensorFlow's, TFX's and Beam's logs, warnings, the Beam workers' output) goes to
`<output dir>/logs/<run id>.log`, named on the console. `--verbose`: all of it on the
console, and no log file.

Every run that got as far as a component, failed or blocked ones included, writes its
report, `<output dir>/reports/<run id>/index.html`; `python -m pipeline report
--output-dir O --profile P` writes the latest run's report again and runs nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import logging
import os
import signal
import sys
import time
import traceback
import warnings
from typing import Optional

# Nothing imported here imports TensorFlow: its runtime settings depend on the config
# (training.device) and must be in the environment before it loads.
import pipeline_config
from components import console
from components.console import UserError
from components.training import runtime
from pipeline.run_lock import RunLockedError
from pipeline.run_log import RunLog


class Exit(enum.IntEnum):
    """The exit status of every command (the module docstring says when each)."""

    OK = 0
    FAILED = 1  # a component (or the report, or scoring) failed
    BAD_INPUT = 2  # bad input or settings, named; nothing was written
    LOCKED = 3  # another run holds the output directory's lock; nothing was done
    ANOMALIES = 4  # data validation stopped the run, or monitor found drift


def _add_profile(command, help: str = "the named settings (pipeline_config.py)") -> None:
    command.add_argument("--profile", default="full", choices=sorted(pipeline_config.PROFILES),
                         help=help)


def _add_output_dir(command, help: str) -> None:
    command.add_argument("--output-dir", help=help)


def _add_overrides(command, help: str = "override a config field") -> None:
    command.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="SECTION.FIELD=VALUE", help=help)


def _add_runner(command) -> None:
    command.add_argument("--runner", help="Beam runner, e.g. DataflowRunner, FlinkRunner")


def _add_verbose(command, help: str) -> None:
    command.add_argument("--verbose", action="store_true", help=help)


# A recorded run's command names it as the run did: the profile names its pipeline.
RUN_PROFILE = "the profile the run used (it names the pipeline)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the TFX pipeline")
    _add_profile(run)
    run.add_argument("--data-dir", help="CIFAR-10 directory, span root or tarball; "
                     "omitted: download the official archive into the cache")
    _add_output_dir(run, "where pipeline_root/ and metadata.sqlite go")
    run.add_argument("--cache-dir", help="where downloads and extracted archives go")
    run.add_argument("--orchestrator", choices=pipeline_config.ORCHESTRATORS,
                     help="LocalDagRunner (default) or TFX's BeamDagRunner")
    _add_runner(run)
    run.add_argument("--to-node", dest="to_nodes", action="append", default=[],
                     metavar="NODE", help="run only NODE and its ancestors, e.g. Transform")
    _add_overrides(run)
    _add_verbose(run, "everything on the console (TensorFlow's, TFX's and Beam's logs "
                 "too) instead of <output dir>/logs/<run id>.log")
    run.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                     help="how often a running component says it is alive (default 30)")
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
    _add_profile(report, RUN_PROFILE)
    _add_output_dir(report, "the run's output directory")
    infer = commands.add_parser(
        "infer-schema", help="write the schema TFDV infers from the latest run's "
        "statistics, to compare with the reviewed components/validation/schema.pbtxt")
    _add_profile(infer, RUN_PROFILE)
    _add_output_dir(infer, "the run's output directory")
    infer.add_argument("--out", help="where to write it (default: "
                       "<output dir>/inferred_schema.pbtxt)")
    score = commands.add_parser(
        "score", help="score a directory of unlabeled images with TFX's BulkInferrer and a "
        "pushed model; writes <output dir>/scores/<time>/predictions.jsonl")
    score.add_argument("--data-dir", required=True,
                       help="PNG/JPEG/BMP files, or CIFAR-10 batch files in an official layout")
    score.add_argument("--model", help="a SavedModel (version) directory or a model base "
                       "path (default: the newest version pushed by --profile's pipeline)")
    _add_profile(score)
    _add_output_dir(score, "the pipeline's output directory")
    _add_runner(score)
    _add_overrides(score)
    _add_verbose(score, "everything on the console instead of <output dir>/logs/")
    monitor = commands.add_parser(
        "monitor", help="drift between a served version's logged traffic and what it was "
        "trained and evaluated on; exit status 4 on drift")
    monitor.add_argument("--requests", required=True, metavar="DIR",
                         help="the request log directory (serve/proxy --log-requests)")
    _add_profile(monitor, "the profile of the pipeline that pushed the served model")
    _add_output_dir(monitor, "that pipeline's output directory (its ML Metadata); the "
                    "report goes to <output dir>/reports/")
    monitor.add_argument("--since", help="only requests logged since then: 90m, 6h, 2d, or "
                         "an ISO date or time (UTC)")
    monitor.add_argument("--version", type=int,
                         help="the served version to judge (default: the newest that answered)")
    _add_overrides(monitor, "override a config field, e.g. monitoring.min_images=500")
    return parser


# Command-line flags of `run` and the config fields they set.
_RUN_FLAGS = (("data_dir", "data.data_dir"), ("output_dir", "output_dir"),
              ("cache_dir", "data.cache_dir"), ("orchestrator", "orchestrator"),
              ("runner", "beam.runner"))


def _config_from_args(args, beam_args, flags=_RUN_FLAGS) -> pipeline_config.PipelineConfig:
    """The config of a pipeline run on this machine; raises ConfigError."""
    from pipeline.staging import dataflow_problem

    config = _settings_from_args(args, beam_args, flags)
    if problem := dataflow_problem(
            config, config.pipeline_root, config.data.data_dir,
            hint="put both on gs:// (--set artifacts_dir=gs://BUCKET/artifacts "
                 "--data-dir gs://BUCKET/cifar10)"):
        raise pipeline_config.ConfigError(problem)
    return config


def _settings_from_args(args, beam_args, flags) -> pipeline_config.PipelineConfig:
    overrides = [f"{field}={getattr(args, flag)}" for flag, field in flags
                 if getattr(args, flag) is not None]
    config = pipeline_config.load(args.profile, tuple(overrides + args.overrides))
    return pipeline_config.with_beam_args(config, beam_args)


def _log_everything() -> None:
    """absl (TFX's logging) at INFO: TFX's component lines drive the console's
    (pipeline/component_lines.py), and the log file keeps the rest."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import absl.logging
    absl.logging.set_verbosity(absl.logging.INFO)


def _evaluate(args, extra_args) -> int:
    from components.data import source as data_source
    from pipeline import evaluate

    if extra_args:
        print(f"error: unexpected arguments: {' '.join(extra_args)}", file=sys.stderr)
        return Exit.BAD_INPUT
    try:
        source = data_source.resolve(args.data_dir,
                                     args.cache_dir or data_source.DEFAULT_CACHE_DIR)
        evaluate.evaluate(args.model, source, limit=args.limit)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return Exit.BAD_INPUT
    return Exit.OK


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
        console.error(f"warning: the run report was not written: "
                       f"{type(error).__name__}: {error}")
        return None
    if index:
        run_summary["report"] = index
    return index


def _recorded_run_config(args, extra_args):
    """The config of an earlier run named by --profile and --output-dir, for the
    commands that read a run back (report, infer-schema, monitor); None after printing
    why."""
    if extra_args:
        print(f"error: unexpected arguments: {' '.join(extra_args)}", file=sys.stderr)
        return None
    try:
        return pipeline_config.load(args.profile, ((f"output_dir={args.output_dir}",)
                                                   if args.output_dir else ())
                                    + tuple(getattr(args, "overrides", ())))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def _report(args, extra_args) -> int:
    config = _recorded_run_config(args, extra_args)
    if config is None:
        return Exit.BAD_INPUT
    from pipeline.report.writer import write_report
    try:
        index = write_report(os.path.abspath(config.metadata_path), config.pipeline_name,
                             config.output_dir, config.profile)
    except Exception as error:  # an artifact the report reads is missing or unreadable
        print(f"error: the report was not written: {type(error).__name__}: {error}",
              file=sys.stderr)
        return Exit.FAILED
    if index is None:
        print(f"error: {os.path.abspath(config.metadata_path)}: no run of pipeline "
              f"{config.pipeline_name} recorded (is --profile the run's?)", file=sys.stderr)
        return Exit.BAD_INPUT
    print(f"Report: {index}")
    return Exit.OK


def _infer_schema(args, extra_args) -> int:
    from pipeline import schema

    config = _recorded_run_config(args, extra_args)
    if config is None:
        return Exit.BAD_INPUT
    statistics_uri = (schema.latest_statistics_uri(os.path.abspath(config.metadata_path),
                                                   config.pipeline_name)
                      if os.path.exists(config.metadata_path) else None)
    if statistics_uri is None:
        print(f"error: {os.path.abspath(config.metadata_path)}: no statistics of pipeline "
              f"{config.pipeline_name} recorded (run it first; is --profile the run's?)",
              file=sys.stderr)
        return Exit.BAD_INPUT
    written = schema.write_inferred_schema(
        statistics_uri, args.out or os.path.join(config.output_dir, "inferred_schema.pbtxt"))
    from pipeline.pipeline import DEFAULT_SCHEMA_FILE
    print(f"Inferred from {statistics_uri}:\n  {written}\nCompare with the reviewed "
          f"schema:\n  diff {os.path.relpath(DEFAULT_SCHEMA_FILE)} {written}")
    return Exit.OK


def _monitor(args, extra_args) -> int:
    from pipeline import monitor

    config = _recorded_run_config(args, extra_args)
    if config is None:
        return Exit.BAD_INPUT
    try:
        since = monitor.parse_since(args.since) if args.since is not None else None
        summary = monitor.monitor(config, args.requests, since, args.version)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return Exit.BAD_INPUT
    monitor.print_summary(summary, sys.stdout)
    return Exit.ANOMALIES if summary["anomalies"] else Exit.OK


def _score(args, beam_args) -> int:
    from pipeline import score
    from pipeline.staging import dataflow_problem

    try:
        # --data-dir is what to score, not the pipeline's data.
        config = _settings_from_args(args, beam_args,
                                     (("output_dir", "output_dir"), ("runner", "beam.runner")))
        if problem := dataflow_problem(
                config, score.scores_root(config), args.data_dir,
                hint="score keeps its artifacts on this machine: score on Flink or Spark, "
                     "or on the in-process runner"):
            raise pipeline_config.ConfigError(problem)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return Exit.BAD_INPUT

    def scored(on_start) -> tuple:
        """(exit status, the scores folder's name or None)."""
        try:
            summary = score.score(config, args.data_dir, args.model, on_start)
        except UserError as error:
            console.error(f"error: {error}")
            return Exit.BAD_INPUT, None
        score.print_summary(summary)
        return Exit.OK, os.path.basename(os.path.dirname(summary["predictions"]))

    if args.verbose:
        with _stopped_at_once(None):
            return scored(None)[0]
    with RunLog() as run_log, _stopped_at_once(run_log):
        try:
            status, folder = scored(lambda: run_log.settle(config.output_dir))
        except Exception:
            traceback.print_exc()  # into the log
            console.error(f"error: scoring failed; the traceback and the whole output: "
                           f"{run_log.path}")
            return Exit.FAILED
        if not run_log.settled:
            os.remove(run_log.path)  # refused before it began: nothing to keep
        elif folder:
            console.report(f"Log: {run_log.name_after(f'score-{folder}')}")
    return status


@contextlib.contextmanager
def _stopped_at_once(run_log: Optional[RunLog]):
    """SIGINT and SIGTERM end `score` at once (status 128 + the signal's number), its
    child processes stopped, the folders it was building removed and its log named as
    interrupted. Not by an exception: Beam wraps one raised inside a DoFn, and TFX's
    runner can swallow it."""
    def stop(signum, _frame):
        import psutil

        from pipeline.report.writer import abandon_building

        # Beam's worker processes (multi_processing mode) would outlive an os._exit.
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.terminate()
        abandon_building()
        where = ""
        if run_log is not None and run_log.settled:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            where = (f"; the output so far: "
                     f"{run_log.name_after(f'score-{stamp}-interrupted')}")
        elif run_log is not None:
            os.remove(run_log.path)  # stopped before it began: nothing to keep
        console.error(f"Interrupted ({signal.Signals(signum).name}): nothing was "
                       f"written{where}")
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(128 + signum)

    previous = {signum: signal.signal(signum, stop)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv=None) -> int:
    # google-api-core warns once per Vertex AI module that Python 3.10 is old: TFX 1.16
    # supports nothing newer, so the dozens of lines carry no information.
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    args, beam_args = _parser().parse_known_args(argv)
    _log_everything()
    commands = {"evaluate": _evaluate, "report": _report, "infer-schema": _infer_schema,
                "score": _score, "monitor": _monitor}
    if args.command in commands:
        runtime.prepare_tensorflow()
        return commands[args.command](args, beam_args)
    try:
        config = _config_from_args(args, beam_args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return Exit.BAD_INPUT
    if args.verbose:
        return _run(config, args, Console(sys.stdout))
    with RunLog() as run_log:
        status = _run(config, args, Console(run_log.console, run_log))
        if not run_log.settled and status in (Exit.OK, Exit.BAD_INPUT, Exit.LOCKED):
            os.remove(run_log.path)  # refused before it began: nothing to keep
        elif not run_log.settled:
            print(f"The whole output is in {run_log.path}", file=run_log.errors)
    return status


class Console:
    """Where the run's summary goes: the terminal (`out`), and the log file beside it
    when there is one (`run_log`). Other lines go through components.console, which
    echoes them on the terminal."""

    def __init__(self, out, run_log: Optional[RunLog] = None) -> None:
        self.out, self.run_log = out, run_log

    def start_log(self, output_dir: str) -> None:
        """Moves the log into the output directory, now that the run begins."""
        if self.run_log is not None:
            path = self.run_log.settle(output_dir)
            console.report(f"Log: {path} (everything; named after the run id when it ends)")

    def name_log_after(self, report_index: Optional[str], run_summary: dict) -> None:
        """Names the log as the run's report folder (its run id) and adds its path to
        the summary."""
        if self.run_log is None:
            return
        if report_index:
            self.run_log.name_after(os.path.basename(os.path.dirname(report_index)))
        run_summary["log"] = self.run_log.path

    def print_report(self, run_summary: dict) -> None:
        from pipeline import summary
        if self.run_log is not None:  # the log keeps the whole report
            summary.print_report(run_summary, sys.stdout)
        summary.print_report(run_summary, self.out, artifacts=self.run_log is None)


def _run(config, args, run_console: Console) -> int:
    """Runs the pipeline; returns the exit status."""
    runtime.prepare_tensorflow(config.training.device)
    from pipeline import local_runner
    started_ms = int(time.time() * 1000)
    component_lines = []

    def on_start() -> None:
        # Once the data is checked: the handler imports TFX, which takes seconds.
        from pipeline.component_lines import ComponentLines
        run_console.start_log(config.output_dir)
        component_lines.append(ComponentLines(
            os.path.abspath(config.metadata_path), config.pipeline_name,
            config.pipeline_root, args.progress_every))
        logging.getLogger("absl").addHandler(component_lines[0])

    try:
        run_summary = local_runner.run(config, args.to_nodes, on_start=on_start)
    except UserError as error:
        console.error(f"error: {error}")
        return Exit.BAD_INPUT
    except RunLockedError as error:
        console.error(f"error: {error}")
        return Exit.LOCKED
    except Exception as error:  # a component failed
        traceback.print_exc()  # into the log (the console under --verbose)
        from pipeline.component_lines import duration
        failed = component_lines[0].running() if component_lines else {}
        for node, seconds in failed.items():
            console.report(f"{node}: FAILED after {duration(seconds)}")
        from components.validation.data_gate import stopped_by_data_gate
        if stopped_by_data_gate(error):
            return _stopped_by_data_gate(config, error, run_console, started_ms)
        console.error(f"error: pipeline failed{' in ' + ', '.join(failed) if failed else ''}"
                       f": {type(error).__name__}: {error}")
        failure = {}
        index = _write_report(config, failure, started_ms)
        run_console.name_log_after(index, failure)
        if index:
            console.report(f"Report: {index}")
        if "log" in failure:
            console.error(f"The traceback and the whole output: {failure['log']}")
        return Exit.FAILED
    finally:
        for handler in component_lines:
            logging.getLogger("absl").removeHandler(handler)
            handler.close()
    index = _write_report(config, run_summary, started_ms)
    run_console.name_log_after(index, run_summary)
    run_console.print_report(run_summary)
    return Exit.OK


def _stopped_by_data_gate(config, error, run_console: Console, started_ms: int) -> int:
    from pipeline import summary
    blocked = {}
    try:
        blocked = summary.run_report(os.path.abspath(config.metadata_path),
                                     config.pipeline_name)
        index = _write_report(config, blocked, started_ms)
        run_console.name_log_after(index, blocked)
        run_console.print_report(blocked)
    except Exception as report_error:  # the exit status must still say why
        console.error(f"warning: the run summary could not be read: "
                       f"{type(report_error).__name__}: {report_error}")
    console.error(f"error: data validation stopped the run: {error}")
    return Exit.ANOMALIES


if __name__ == "__main__":
    sys.exit(main())
