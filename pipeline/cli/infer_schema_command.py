"""`python -m pipeline infer-schema`: the schema TFDV infers from the latest run's
statistics, beside the reviewed one."""

from __future__ import annotations

import os
import sys

from pipeline.cli.arguments import (RUN_PROFILE, Exit, add_output_dir, add_profile,
                                    recorded_run_config)


def add_to(commands) -> None:
    infer = commands.add_parser(
        "infer-schema", help="write the schema TFDV infers from the latest run's "
        "statistics, to compare with the reviewed components/validation/schema.pbtxt")
    add_profile(infer, RUN_PROFILE)
    add_output_dir(infer, "the run's output directory")
    infer.add_argument("--out", help="where to write it (default: "
                       "<output dir>/inferred_schema.pbtxt)")


def main(args, extra_args) -> int:
    from pipeline import schema

    config = recorded_run_config(args, extra_args)
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
