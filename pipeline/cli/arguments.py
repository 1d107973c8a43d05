"""What the commands share: their exit codes, the flags several declare, and reading
a profile with its overrides into a config."""

from __future__ import annotations

import enum
import sys

import pipeline_config
from components.console import UserError


class Exit(enum.IntEnum):
    """The exit status of every command (`python -m pipeline --help` says when each)."""

    OK = 0
    FAILED = 1  # a component (or the report, or scoring) failed
    BAD_INPUT = 2  # bad input or settings, named; nothing was written
    LOCKED = 3  # another run holds the output directory's lock; nothing was done
    ANOMALIES = 4  # data validation stopped the run, or monitor found drift


def add_profile(command, help: str = "the named settings (pipeline_config.py)") -> None:
    command.add_argument("--profile", default="full", choices=sorted(pipeline_config.PROFILES),
                         help=help)


def add_output_dir(command, help: str) -> None:
    command.add_argument("--output-dir", help=help)


def add_overrides(command, help: str = "override a config field") -> None:
    command.add_argument("--set", dest="overrides", action="append", default=[],
                         metavar="SECTION.FIELD=VALUE", help=help)


def add_runner(command) -> None:
    command.add_argument("--runner", help="Beam runner, e.g. DataflowRunner, FlinkRunner")


def add_verbose(command, help: str) -> None:
    command.add_argument("--verbose", action="store_true", help=help)


# A recorded run's command names it as the run did: the profile names its pipeline.
RUN_PROFILE = "the profile the run used (it names the pipeline)"


def settings_from_args(args, beam_args, flags) -> pipeline_config.PipelineConfig:
    overrides = [f"{field}={getattr(args, flag)}" for flag, field in flags
                 if getattr(args, flag) is not None]
    config = pipeline_config.load(args.profile, tuple(overrides + args.overrides))
    return pipeline_config.with_beam_args(config, beam_args)


def recorded_run_config(args, extra_args):
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
