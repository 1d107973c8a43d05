"""`python -m pipeline report`: the latest run's report written again (runs nothing)."""

from __future__ import annotations

import os
import sys

from pipeline.cli.arguments import (RUN_PROFILE, Exit, add_output_dir, add_profile,
                                    recorded_run_config)


def add_to(commands) -> None:
    report = commands.add_parser(
        "report", help="write the latest run's report again from ML Metadata (runs nothing)")
    add_profile(report, RUN_PROFILE)
    add_output_dir(report, "the run's output directory")


def main(args, extra_args) -> int:
    config = recorded_run_config(args, extra_args)
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
