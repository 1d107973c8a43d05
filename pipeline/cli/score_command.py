"""`python -m pipeline score`: unlabeled images scored by a pushed model with BulkInferrer."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import traceback
from typing import Optional

import pipeline_config
from components import console
from components.console import UserError
from pipeline.cli.arguments import (Exit, add_output_dir, add_overrides, add_profile,
                                    add_runner, add_verbose, settings_from_args)
from pipeline.run_log import RunLog


def add_to(commands) -> None:
    score = commands.add_parser(
        "score", help="score a directory of unlabeled images with TFX's BulkInferrer and a "
        "pushed model; writes <output dir>/scores/<time>/predictions.jsonl")
    score.add_argument("--data-dir", required=True,
                       help="PNG/JPEG/BMP files, or CIFAR-10 batch files in an official layout")
    score.add_argument("--model", help="a SavedModel (version) directory or a model base "
                       "path (default: the newest version pushed by --profile's pipeline)")
    add_profile(score)
    add_output_dir(score, "the pipeline's output directory")
    add_runner(score)
    add_overrides(score)
    add_verbose(score, "everything on the console instead of <output dir>/logs/")


def main(args, beam_args) -> int:
    from pipeline import score
    from pipeline.staging import dataflow_problem

    try:
        # --data-dir is what to score, not the pipeline's data.
        config = settings_from_args(args, beam_args,
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
