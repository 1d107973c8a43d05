"""Where the output of `python -m pipeline run` goes: all of it to a log file, and to
the terminal only the lines written for the person watching.

The process's standard output and standard error (file descriptors 1 and 2) are
pointed at the log file before TensorFlow is imported. So the log gets everything,
whoever writes it: TensorFlow's and XLA's C++ logging, absl/TFX/Beam logging, Python
warnings from dependencies, and every child process (the Beam workers of
multi_processing mode, the ServingLoadCheck's subprocess), which inherit those
descriptors. The terminal is kept as two streams of its own (`console`, `errors`);
`components.console` echoes its lines there.

Until the run is under way (settings parsed, the data checked, the output directory's
lock taken) the log is a temporary file, so that a run refused for bad input writes
nothing into its output directory. `settle` moves it to `<output dir>/logs/`;
`name_after` gives it the run's id once TFX has recorded one, the name its report
directory has.
"""

from __future__ import annotations

import datetime
import os
import shutil
import sys
import tempfile
from typing import Optional, TextIO

from components import console

LOGS_DIR = "logs"


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream cannot lose more
            pass


def _point_output_at(path: str) -> None:
    _flush_python_streams()
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
    finally:
        os.close(log_fd)


class RunLog:
    """The log file of one run and the terminal beside it. Use as a context manager;
    leaving it puts standard output and standard error back on the terminal."""

    def __init__(self) -> None:
        self.path: Optional[str] = None
        self.settled = False
        self.console: TextIO = sys.stdout
        self.errors: TextIO = sys.stderr
        self._terminal_fds: dict = {}

    def __enter__(self) -> "RunLog":
        _flush_python_streams()
        self._terminal_fds = {fd: os.dup(fd) for fd in (1, 2)}
        self.console = os.fdopen(os.dup(self._terminal_fds[1]), "w", buffering=1,
                                 encoding="utf-8", errors="replace")
        self.errors = os.fdopen(os.dup(self._terminal_fds[2]), "w", buffering=1,
                                encoding="utf-8", errors="replace")
        handle, self.path = tempfile.mkstemp(prefix="cifar10-tfx-run-", suffix=".log")
        os.close(handle)
        _point_output_at(self.path)
        console.echo_to(self.console, self.errors)
        return self

    def settle(self, output_dir: str) -> str:
        """Moves the log into `<output_dir>/logs/`, named by the time the run started
        until `name_after` renames it; returns its path."""
        logs_dir = os.path.join(os.path.abspath(output_dir), LOGS_DIR)
        os.makedirs(logs_dir, exist_ok=True)
        started = datetime.datetime.now().strftime("%Y-%m-%dT%H-%M-%S")
        path = os.path.join(logs_dir, f"{started}-{os.getpid()}.log")
        _flush_python_streams()
        shutil.copyfile(self.path, path)
        _point_output_at(path)
        os.remove(self.path)
        self.path, self.settled = path, True
        return path

    def name_after(self, run_dir_name: str) -> str:
        """Renames the settled log `<run_dir_name>.log` (the descriptors follow the
        file); returns its path."""
        if self.settled and run_dir_name:
            path = os.path.join(os.path.dirname(self.path), f"{run_dir_name}.log")
            os.replace(self.path, path)
            self.path = path
        return self.path

    def __exit__(self, *exc_info) -> None:
        console.echo_to(None)
        _flush_python_streams()
        for fd, saved in self._terminal_fds.items():
            os.dup2(saved, fd)
            os.close(saved)
        self._terminal_fds = {}
        for stream in (self.console, self.errors):
            stream.close()
        self.console, self.errors = sys.stdout, sys.stderr


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
