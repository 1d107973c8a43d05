"""`python -m pipeline run`: the pipeline on this machine, its console, log and report."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from typing import Optional

import pipeline_config
from components import console
from components.console import UserError
from components.training import runtime
from pipeline.cli.arguments import (Exit, add_output_dir, add_overrides, add_profile,
                                    add_runner, add_verbose, settings_from_args)
from pipeline.run_lock import RunLockedError
from pipeline.run_log import Console, RunLog


def add_to(commands) -> None:
    run = commands.add_parser("run", help="run the TFX pipeline")
    add_profile(run)
    run.add_argument("--data-dir", help="CIFAR-10 directory, span root or tarball; "
                     "omitted: download the official archive into the cache")
    add_output_dir(run, "where pipeline_root/ and metadata.sqlite go")
    run.add_argument("--cache-dir", help="where downloads and extracted archives go")
    run.add_argument("--orchestrator", choices=pipeline_config.ORCHESTRATORS,
                     help="LocalDagRunner (default) or TFX's BeamDagRunner")
    add_runner(run)
    run.add_argument("--to-node", dest="to_nodes", action="append", default=[],
                     metavar="NODE", help="run only NODE and its ancestors, e.g. Transform")
    add_overrides(run)
    add_verbose(run, "everything on the console (TensorFlow's, TFX's and Beam's logs "
                 "too) instead of <output dir>/logs/<run id>.log")
    run.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                     help="how often a running component says it is alive (default 30)")


# Command-line flags of `run` and the config fields they set.
_RUN_FLAGS = (("data_dir", "data.data_dir"), ("output_dir", "output_dir"),
              ("cache_dir", "data.cache_dir"), ("orchestrator", "orchestrator"),
              ("runner", "beam.runner"))


def config_from_args(args, beam_args, flags=_RUN_FLAGS) -> pipeline_config.PipelineConfig:
    """The config of a pipeline run on this machine; raises ConfigError."""
    from pipeline.staging import dataflow_problem

    config = settings_from_args(args, beam_args, flags)
    if problem := dataflow_problem(
            config, config.pipeline_root, config.data.data_dir,
            hint="put both on gs:// (--set artifacts_dir=gs://BUCKET/artifacts "
                 "--data-dir gs://BUCKET/cifar10)"):
        raise pipeline_config.ConfigError(problem)
    return config


def main(args, beam_args) -> int:
    """Runs the pipeline as `args` say; returns the exit status."""
    try:
        config = config_from_args(args, beam_args)
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
