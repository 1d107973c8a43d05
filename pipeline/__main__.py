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
import os
import sys
import warnings

# Nothing imported here imports TensorFlow: its runtime settings depend on the config
# (training.device) and must be in the environment before it loads.
from components.training import runtime
from pipeline.cli import (evaluate_command, infer_schema_command, monitor_command,
                          report_command, run_command, score_command)

# Each command's module declares its arguments and runs it.
COMMANDS = {"run": run_command, "evaluate": evaluate_command, "report": report_command,
            "infer-schema": infer_schema_command, "score": score_command,
            "monitor": monitor_command}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_to(commands)
    return parser


def _log_everything() -> None:
    """absl (TFX's logging) at INFO: TFX's component lines drive the console's
    (pipeline/component_lines.py), and the log file keeps the rest."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import absl.logging
    absl.logging.set_verbosity(absl.logging.INFO)


def main(argv=None) -> int:
    # google-api-core warns once per Vertex AI module that Python 3.10 is old: TFX 1.16
    # supports nothing newer, so the dozens of lines carry no information.
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    args, extra_args = _parser().parse_known_args(argv)
    _log_everything()
    if args.command != "run":  # run prepares TensorFlow for its config's device
        runtime.prepare_tensorflow()
    return COMMANDS[args.command].main(args, extra_args)


if __name__ == "__main__":
    sys.exit(main())
