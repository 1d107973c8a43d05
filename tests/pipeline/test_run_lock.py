"""One run per output directory: a second `python -m pipeline run` exits 3 and does
nothing; a run killed with SIGKILL leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from components.data import cifar10_format
from pipeline import run_lock
from tests.support.data import REPO_ROOT, write_small_dataset


@pytest.mark.slow  # `python -m pipeline run` in a subprocess
def test_a_second_run_exits_3_and_does_nothing(tmp_path):
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.PYTHON_LAYOUT, train_sizes=(10,), test_size=5)
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    with run_lock.exclusive(str(output_dir), "cifar10-resnet9-smoke"):
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "run", "--profile", "smoke", "--data-dir",
             root, "--output-dir", str(output_dir)],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 3, result.stderr[-2000:]
    assert f"pid {os.getpid()}" in result.stderr and "this run does nothing" in result.stderr
    assert sorted(os.listdir(output_dir)) == [run_lock.LOCK_FILE]


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pipeline import run_lock\n"
         "with run_lock.exclusive(sys.argv[1], 'p'):\n"
         "    print('locked', flush=True); time.sleep(600)", str(tmp_path)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(run_lock.RunLockedError, match=f"pid {holder.pid}"):
        with run_lock.exclusive(str(tmp_path), "p"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with run_lock.exclusive(str(tmp_path), "p") as lock_path:
        assert os.path.exists(lock_path)
