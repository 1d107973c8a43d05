"""The console's account of a running pipeline: one line when a component starts, one
when it ends (its state from ML Metadata, its seconds and its key figure), and while
one runs, a line every `every_s` seconds saying it is alive (elapsed time, and how
much its outputs hold so far: Beam writes them as it goes).

Both orchestrators log a component's start and end through absl (LocalDagRunner:
"Component X is running.", BeamDagRunner: "node X is running."); a handler on absl's
logger turns those records into these lines, so nothing in TFX is patched.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from typing import Dict

from components import console
from pipeline.pipeline import TRAINER_ID

# Components whose own lines show their progress (the Trainer's epoch lines and ETA).
_OWN_PROGRESS_LINES = {TRAINER_ID}
_STARTED = re.compile(r"^(?:Component|node) (\S+) is running\.$")
_FINISHED = re.compile(r"^(?:Component|node) (\S+) is finished\.$")


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else \
        f"{minutes // 60} h {minutes % 60:02d} min"


def size(byte_count: int) -> str:
    return (f"{byte_count / 2**20:.1f} MiB" if byte_count >= 2**20
            else f"{byte_count / 2**10:.0f} KiB")


def bytes_written_since(directory: str, since_epoch_s: float) -> int:
    """Bytes of the files under `directory` modified at or after `since_epoch_s`."""
    total = 0
    for root, _, files in os.walk(directory):
        for name in files:
            try:
                status = os.stat(os.path.join(root, name))
            except OSError:  # a temporary file Beam renamed or removed meanwhile
                continue
            if status.st_mtime >= since_epoch_s:
                total += status.st_size
    return total


class ComponentLines(logging.Handler):
    """Install with `logging.getLogger("absl").addHandler(...)`; `close()` stops the
    alive lines."""

    def __init__(self, metadata_path: str, pipeline_name: str, pipeline_root: str,
                 every_s: float = 30.0) -> None:
        super().__init__(logging.INFO)
        self.metadata_path, self.pipeline_name = metadata_path, pipeline_name
        self.pipeline_root, self.every_s = pipeline_root, every_s
        # node id -> (monotonic start, wall-clock start, monotonic time of its last line)
        self._running: Dict[str, list] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._alive_thread = threading.Thread(target=self._alive_lines, daemon=True,
                                              name="component-alive-lines")
        self._alive_thread.start()

    def running(self) -> Dict[str, float]:
        """The components started and not finished (the failed one, after a failure),
        with their seconds so far."""
        now = time.monotonic()
        with self._lock:
            return {node: now - times[0] for node, times in self._running.items()}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        started, finished = _STARTED.match(message), _FINISHED.match(message)
        if started:
            now = time.monotonic()
            with self._lock:
                self._running[started.group(1)] = [now, time.time(), now]
            console.report(f"{started.group(1)}: running")
        elif finished:
            node = finished.group(1)
            with self._lock:
                began = self._running.pop(node, [time.monotonic()])[0]
            seconds = time.monotonic() - began
            component = self._component(node)
            console.report(f"{node}: {component.get('state', 'finished')} in "
                            f"{duration(seconds)}{self._figure(node, component)}")

    def _component(self, node: str) -> dict:
        """The node's entry in the latest run's summary ({} when it cannot be read)."""
        try:
            from pipeline.summary import latest_run
            return latest_run(self.metadata_path, self.pipeline_name)[
                "components"].get(node, {})
        except Exception:  # the line must never fail the run: the log says why
            logging.getLogger(__name__).exception("reading %s's execution", node)
            return {}

    @staticmethod
    def _figure(node: str, component: dict) -> str:
        from pipeline.key_figures import key_figure
        try:
            figure = key_figure(node, component)
        except Exception:  # a figure that cannot be read is left out, and logged
            logging.getLogger(__name__).exception("reading %s's key figure", node)
            return ""
        return f"; {figure}" if figure else ""

    def _alive_lines(self) -> None:
        while not self._stopped.wait(min(self.every_s, 1.0)):
            now = time.monotonic()
            with self._lock:
                due = [(node, times) for node, times in self._running.items()
                       if now - times[2] >= self.every_s and node not in _OWN_PROGRESS_LINES]
                for _, times in due:
                    times[2] = now
            for node, (began, began_wall, _) in due:
                written = bytes_written_since(os.path.join(self.pipeline_root, node),
                                              began_wall)
                console.report(f"{node}: still running, {duration(now - began)}"
                                f"{f'; {size(written)} written' if written else ''}")

    def close(self) -> None:
        self._stopped.set()
        self._alive_thread.join(timeout=5)
        super().close()
