"""TensorFlow's runtime environment for training, which TensorFlow reads from the
environment when it is imported (and CUDA when it starts): entry points call
`prepare_tensorflow` before anything imports TensorFlow. Child processes (Beam
workers) inherit what it sets.

On the CPU (measured on a 2-core AMD EPYC, benchmarks/train_throughput.py: ResNet9 at
batch 128 goes from 31.2 images/s with TensorFlow's defaults to 52.6):
- TF_ENABLE_ONEDNN_OPTS=1: oneDNN kernels for conv and matmul. TensorFlow turns them
  on by default only on CPUs with AVX512_VNNI/BF16/AMX; on others Eigen runs (half
  oneDNN's matmul rate here);
- TF_NUM_INTEROP_THREADS=1: with oneDNN, two ops at once each take every core and
  slow each other down (27.3 images/s with oneDNN and TensorFlow's inter-op pool).

On an NVIDIA GPU, with the `gpu` extra's pip wheels of CUDA 12.3 / cuDNN 8.9 (the
versions TensorFlow 2.16 is built against) under site-packages/nvidia/:
- the libraries are loaded by absolute path (RTLD_GLOBAL) before TensorFlow looks for
  them by name, and LD_LIBRARY_PATH names their folders for child processes. TF 2.16's
  wheel does not find them by itself (tensorflow/tensorflow#63362, whose accepted
  workaround is LD_LIBRARY_PATH; the loader reads that only at process start, hence
  the preload for this process);
- XLA finds ptxas and libdevice through --xla_gpu_cuda_data_dir (the nvcc wheel's
  folder; ptxas also goes on PATH);
- CUDA_CACHE_MAXSIZE=4 GiB: TF 2.16 ships no kernels compiled for Hopper (sm_90) and
  newer, so the driver JIT-compiles its PTX at start-up; the default 256 MiB cache
  cannot hold the result, and every run would compile again for minutes;
- TF_FORCE_GPU_ALLOW_GROWTH=true: every process that imports TensorFlow (the Trainer,
  and each Beam worker of ExampleGen, Transform and the Evaluator) takes GPU memory as
  it needs it instead of all of it up front.
A value already in the environment wins over each of these defaults.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import subprocess
from typing import MutableMapping, Optional

from components.training.config import CHOICES

DEVICES = CHOICES["device"]
CPU_TRAINING_ENVIRONMENT = {
    "TF_ENABLE_ONEDNN_OPTS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}
# /proc/cpuinfo flags of CPUs with bfloat16 instructions.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
GPU_DEFAULTS = {
    "CUDA_CACHE_MAXSIZE": str(4 * 1024 ** 3),
    "TF_FORCE_GPU_ALLOW_GROWTH": "true",
}
# What the run prints when it stops: how to get the GPU used, or to skip it.
GPU_FIX = ("install TensorFlow's CUDA libraries with `make setup GPU=1` (the `gpu` "
           "extra; NVIDIA driver >= 525 for CUDA 12.3), or train on the CPU on purpose "
           "with --set training.device=cpu")


def nvidia_gpu_listed() -> bool:
    """The NVIDIA driver lists a GPU (`nvidia-smi -L`), whatever TensorFlow sees."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                 timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return listing.returncode == 0 and any(
        line.startswith("GPU") for line in listing.stdout.splitlines())


def pip_cuda_root() -> Optional[str]:
    """site-packages/nvidia, where the `gpu` extra's CUDA wheels live, if installed."""
    spec = importlib.util.find_spec("nvidia")
    locations = list(spec.submodule_search_locations or []) if spec else []
    return next((path for path in locations if glob.glob(os.path.join(path, "*", "lib"))),
                None)


def cuda_environment(nvidia_root: str, environ: MutableMapping[str, str]) -> dict:
    """The variables to set for the CUDA wheels under `nvidia_root`, given `environ`."""
    lib_dirs = sorted(glob.glob(os.path.join(nvidia_root, "*", "lib")))
    nvcc_dir = os.path.join(nvidia_root, "cuda_nvcc")

    def prepend(name: str, entries: list) -> str:
        existing = [entry for entry in environ.get(name, "").split(os.pathsep) if entry]
        return os.pathsep.join(entries + [e for e in existing if e not in entries])

    xla_flags = environ.get("XLA_FLAGS", "")
    if "--xla_gpu_cuda_data_dir" not in xla_flags:
        xla_flags = f"{xla_flags} --xla_gpu_cuda_data_dir={nvcc_dir}".strip()
    return {
        "LD_LIBRARY_PATH": prepend("LD_LIBRARY_PATH", lib_dirs),
        "PATH": prepend("PATH", [os.path.join(nvcc_dir, "bin")]),
        "XLA_FLAGS": xla_flags,
        **{key: value for key, value in GPU_DEFAULTS.items() if key not in environ},
    }


def preload_cuda_libraries(nvidia_root: str) -> list:
    """dlopens every CUDA library under `nvidia_root` by path, dependencies first
    (retried until nothing more loads); returns the files that would not load."""
    pending = sorted(path for path in glob.glob(os.path.join(nvidia_root, "*", "lib",
                                                             "lib*.so*"))
                     if not os.path.islink(path))
    while pending:
        failed = []
        for path in pending:
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                failed.append(path)
        if len(failed) == len(pending):
            return failed
        pending = failed
    return []


def cpu_has_bfloat16(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX), where
    oneDNN runs bfloat16 convolutions about twice as fast as float32 ones."""
    try:
        with open(cpuinfo_path) as cpuinfo:
            flags = set(cpuinfo.read().split())
    except OSError:
        return False
    return bool(flags & set(BFLOAT16_CPU_FLAGS))


def apply_cpu_training_defaults(environ: MutableMapping[str, str] = os.environ) -> dict:
    """Sets the CPU settings not already set; returns those it set."""
    applied = {key: value for key, value in CPU_TRAINING_ENVIRONMENT.items()
               if key not in environ}
    environ.update(applied)
    return applied


def prepare_tensorflow(device: str = "auto",
                       environ: MutableMapping[str, str] = os.environ) -> str:
    """Sets TensorFlow's environment for training on `device` (training.device: auto,
    gpu or cpu); returns what was prepared: "gpu" (CUDA libraries found and loaded),
    "cpu", or "missing-cuda" (the driver lists a GPU but the CUDA libraries are not
    installed: `check_training_device` stops the run with the fix)."""
    if device == "cpu" or not nvidia_gpu_listed():
        if device == "cpu":
            environ["CUDA_VISIBLE_DEVICES"] = "-1"  # hidden from this run's processes
        apply_cpu_training_defaults(environ)
        return "cpu"
    nvidia_root = pip_cuda_root()
    if nvidia_root is None:
        return "missing-cuda"
    environ.update(cuda_environment(nvidia_root, environ))
    if environ is os.environ:
        preload_cuda_libraries(nvidia_root)
    return "gpu"


def training_device_problem(device: str, nvidia_listed: bool, tensorflow_gpus: int) -> \
        Optional[str]:
    """Why a run with training.device=`device` must not start, or None."""
    if device not in DEVICES:
        return f"training.device: {device!r} is not one of {', '.join(DEVICES)}"
    if device == "cpu" or tensorflow_gpus:
        return None
    if device == "gpu":
        return f"training.device=gpu, but TensorFlow sees no GPU: {GPU_FIX}"
    if nvidia_listed:
        return (f"this machine has an NVIDIA GPU (nvidia-smi lists it), but TensorFlow "
                f"cannot use it, and the full schedule would take hours on the CPU: "
                f"{GPU_FIX}")
    return None
