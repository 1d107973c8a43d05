"""Run progress for the person watching: the one way this project reports it.

Each event is one line on standard output, flushed at once, so that it appears in
order with TFX's own component lines, under `python -m pipeline`, in an Airflow task
log and in a test's captured output alike. A transfer (a download) rewrites one line
on standard error instead, so that a log file does not fill with percentages.
The stream is looked up at call time: tests and callers that redirect stdout see it.

`python -m pipeline run` sends the process's whole output (TensorFlow's C++ logs, the
Beam workers', Python warnings) to its log file and asks for these lines to be
echoed on the terminal as well (`echo_to`): they are the console.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class UserError(Exception):
    """Bad input or settings, said in the user's terms: a command prints the message
    alone (no traceback) and exits 2, having written nothing. Each stage's own input
    errors derive from it, so the command line catches one type."""


# Where lines written to standard output and standard error are echoed too (the
# terminal of a run whose output is its log file); None: nowhere.
_echo: Optional[TextIO] = None
_echo_errors: Optional[TextIO] = None


def echo_to(stream: Optional[TextIO], errors: Optional[TextIO] = None) -> None:
    """Echoes every later line meant for standard output to `stream` too, and every
    `error` line to `errors` (None: stop)."""
    global _echo, _echo_errors
    _echo, _echo_errors = stream, errors


def report(message: str, stream: Optional[TextIO] = None) -> None:
    target = stream or sys.stdout
    print(message, file=target, flush=True)
    if _echo is not None and target is sys.stdout:
        print(message, file=_echo, flush=True)


def error(message: str) -> None:
    """A line for standard error (an error, a warning to act on), echoed as `report`'s
    lines are."""
    print(message, file=sys.stderr, flush=True)
    if _echo_errors is not None:
        print(message, file=_echo_errors, flush=True)


def transfer(label: str, done_bytes: int, total_bytes: Optional[int], started: float,
             finished: bool = False) -> None:
    """Rewrites the progress line of a transfer begun at `started` (time.monotonic())."""
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = done_bytes / elapsed
    line = f"{label}: {done_bytes / 2**20:.1f}"
    if total_bytes:
        eta = (total_bytes - done_bytes) / rate if rate else float("inf")
        line += (f"/{total_bytes / 2**20:.1f} MiB ({100 * done_bytes / total_bytes:.0f}%, "
                 f"{rate / 2**20:.1f} MiB/s, ETA {eta:.0f} s)")
    else:
        line += f" MiB ({rate / 2**20:.1f} MiB/s)"
    # On the terminal even when standard error is a run's log file.
    print(f"\r{line}", end="\n" if finished else "", file=_echo or sys.stderr, flush=True)
    if finished and _echo is not None:
        print(line, file=sys.stderr, flush=True)
