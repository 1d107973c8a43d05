"""TensorFlow's CPU runtime settings for training, which TensorFlow reads from the
environment when it is imported, so entry points apply them before importing it.

Measured on a 2-core AMD EPYC (benchmarks/train_throughput.py): ResNet9 training at
batch 128 goes from 31.2 images/s with TensorFlow's defaults to 52.6 with
- TF_ENABLE_ONEDNN_OPTS=1: oneDNN kernels for conv and matmul. TensorFlow turns them
  on by default only on CPUs with AVX512_VNNI/BF16/AMX; on others Eigen runs (half
  oneDNN's matmul rate here);
- TF_NUM_INTEROP_THREADS=1: with oneDNN, two ops at once each take every core and
  slow each other down (27.3 images/s with oneDNN and TensorFlow's inter-op pool).
A value already in the environment wins; machines with an NVIDIA GPU keep
TensorFlow's defaults (the GPU runs the model).
"""

from __future__ import annotations

import glob
import os
from typing import MutableMapping

CPU_TRAINING_ENVIRONMENT = {
    "TF_ENABLE_ONEDNN_OPTS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


def nvidia_gpu_present() -> bool:
    # Without importing TensorFlow: its settings depend on this answer.
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def apply_cpu_training_defaults(environ: MutableMapping[str, str] = os.environ) -> dict:
    """Sets the settings not already set; returns those it set."""
    if nvidia_gpu_present():
        return {}
    applied = {key: value for key, value in CPU_TRAINING_ENVIRONMENT.items()
               if key not in environ}
    environ.update(applied)
    return applied
