"""`python -m pipeline monitor`: drift between a served version's logged traffic and what
it was trained and evaluated on (exit 4 on drift)."""

from __future__ import annotations

import sys

from components.console import UserError
from pipeline.cli.arguments import (Exit, add_output_dir, add_overrides, add_profile,
                                    recorded_run_config)


def add_to(commands) -> None:
    monitor = commands.add_parser(
        "monitor", help="drift between a served version's logged traffic and what it was "
        "trained and evaluated on; exit status 4 on drift")
    monitor.add_argument("--requests", required=True, metavar="DIR",
                         help="the request log directory (serve/proxy --log-requests)")
    add_profile(monitor, "the profile of the pipeline that pushed the served model")
    add_output_dir(monitor, "that pipeline's output directory (its ML Metadata); the "
                    "report goes to <output dir>/reports/")
    monitor.add_argument("--since", help="only requests logged since then: 90m, 6h, 2d, or "
                         "an ISO date or time (UTC)")
    monitor.add_argument("--version", type=int,
                         help="the served version to judge (default: the newest that answered)")
    add_overrides(monitor, "override a config field, e.g. monitoring.min_images=500")


def main(args, extra_args) -> int:
    from pipeline import monitor

    config = recorded_run_config(args, extra_args)
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
