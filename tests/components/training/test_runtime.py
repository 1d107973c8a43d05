"""The CPU runtime settings reach TensorFlow when applied before it is imported, and
never override a value the user set."""

from __future__ import annotations

import json
import subprocess
import sys

from components.training.runtime import CPU_TRAINING_ENVIRONMENT, apply_cpu_training_defaults
from tests.support.data import REPO_ROOT


def test_user_values_win_and_only_missing_ones_are_set(monkeypatch):
    monkeypatch.setattr("components.training.runtime.nvidia_gpu_present", lambda: False)
    environment = {"TF_NUM_INTEROP_THREADS": "4"}
    applied = apply_cpu_training_defaults(environment)
    assert applied == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert environment == {"TF_NUM_INTEROP_THREADS": "4", "TF_ENABLE_ONEDNN_OPTS": "1"}


def _onednn_in_a_fresh_process(environment: dict) -> tuple:
    code = ("from components.training.runtime import apply_cpu_training_defaults\n"
            "applied = apply_cpu_training_defaults()\n"
            "import json\n"
            "from tensorflow.python.util import _pywrap_util_port\n"
            "print(json.dumps([applied, _pywrap_util_port.IsMklEnabled()]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT,
                            env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3",
                                 **environment},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))


def test_settings_applied_before_import_reach_tensorflow():
    applied, onednn = _onednn_in_a_fresh_process({})
    if applied:  # a machine with an NVIDIA GPU keeps TensorFlow's defaults
        assert applied == CPU_TRAINING_ENVIRONMENT
        assert onednn
    # A user's own value wins.
    applied, onednn = _onednn_in_a_fresh_process({"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert "TF_ENABLE_ONEDNN_OPTS" not in applied and not onednn
