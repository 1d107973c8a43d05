"""One run at a time per output directory, for cron and systemd timers.

An exclusive `flock` on `<output_dir>/.run.lock`: a second run exits at once with a
message naming the holder, and the lock goes with the process, so a killed run (even
kill -9) never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time

LOCK_FILE = ".run.lock"


class RunLockedError(RuntimeError):
    """Another run holds the output directory's lock."""


@contextlib.contextmanager
def exclusive(output_dir: str, pipeline_name: str):
    lock_path = os.path.join(output_dir, LOCK_FILE)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(descriptor, 4096, 0) or b"{}")
        except ValueError:
            holder = {}
        os.close(descriptor)
        since = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
                 if "started" in holder else "an unknown time")
        raise RunLockedError(
            f"{lock_path}: another run (pid {holder.get('pid', '?')}, pipeline "
            f"{holder.get('pipeline', '?')}, started {since}) is using this output "
            f"directory; this run does nothing") from None
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps({"pid": os.getpid(), "pipeline": pipeline_name,
                                          "started": time.time()}).encode(), 0)
        yield lock_path
    finally:
        os.close(descriptor)
