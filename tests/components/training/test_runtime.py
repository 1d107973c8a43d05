"""TensorFlow's runtime environment: the CPU settings reach TensorFlow when applied
before it is imported, the CUDA wheels' folders and libraries are found and loaded, a
user's own values win, and the device decision names the fix."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from components.training import runtime
from components.training.runtime import (CPU_TRAINING_ENVIRONMENT, GPU_FIX,
                                         apply_cpu_training_defaults, cuda_environment,
                                         preload_cuda_libraries, prepare_tensorflow,
                                         training_device_problem)
from tests.support.data import REPO_ROOT


def test_user_values_win_and_only_missing_ones_are_set():
    environment = {"TF_NUM_INTEROP_THREADS": "4"}
    applied = apply_cpu_training_defaults(environment)
    assert applied == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert environment == {"TF_NUM_INTEROP_THREADS": "4", "TF_ENABLE_ONEDNN_OPTS": "1"}


def test_device_cpu_hides_the_gpu_and_tunes_the_cpu():
    environment = {}
    assert prepare_tensorflow("cpu", environment) == "cpu"
    assert environment == {"CUDA_VISIBLE_DEVICES": "-1", **CPU_TRAINING_ENVIRONMENT}


def _onednn_in_a_fresh_process(environment: dict) -> tuple:
    code = ("from components.training.runtime import prepare_tensorflow\n"
            "import os\n"
            "before = dict(os.environ)\n"
            "prepared = prepare_tensorflow()\n"
            "applied = {k: v for k, v in os.environ.items() if before.get(k) != v}\n"
            "import json\n"
            "from tensorflow.python.util import _pywrap_util_port\n"
            "print(json.dumps([prepared, applied, _pywrap_util_port.IsMklEnabled()]))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT,
                            env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3",
                                 **environment},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))


def test_cpu_settings_applied_before_import_reach_tensorflow():
    prepared, applied, onednn = _onednn_in_a_fresh_process({})
    if prepared != "cpu":
        pytest.skip(f"this machine has an NVIDIA GPU ({prepared}): the CPU settings "
                    f"do not apply")
    assert applied == CPU_TRAINING_ENVIRONMENT and onednn
    # A user's own value wins.
    _, applied, onednn = _onednn_in_a_fresh_process({"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert "TF_ENABLE_ONEDNN_OPTS" not in applied and not onednn


def _fake_nvidia_root(root) -> str:
    """The gpu extra's layout: nvidia/<package>/lib, nvcc's bin/ptxas and libdevice."""
    for package in ("cublas", "cuda_runtime", "cudnn"):
        os.makedirs(os.path.join(root, "nvidia", package, "lib"))
    os.makedirs(os.path.join(root, "nvidia", "cuda_nvcc", "bin"))
    os.makedirs(os.path.join(root, "nvidia", "cuda_nvcc", "nvvm", "libdevice"))
    return os.path.join(root, "nvidia")


def test_cuda_environment_points_tensorflow_and_xla_at_the_wheels(tmp_path):
    nvidia_root = _fake_nvidia_root(str(tmp_path))
    environment = cuda_environment(nvidia_root, {"PATH": "/usr/bin:/bin",
                                                 "LD_LIBRARY_PATH": "/opt/mine"})
    assert environment["LD_LIBRARY_PATH"].split(os.pathsep) == [
        os.path.join(nvidia_root, package, "lib")
        for package in ("cublas", "cuda_runtime", "cudnn")] + ["/opt/mine"]
    assert environment["PATH"].split(os.pathsep)[0] == os.path.join(nvidia_root,
                                                                    "cuda_nvcc", "bin")
    assert environment["XLA_FLAGS"] == (f"--xla_gpu_cuda_data_dir="
                                        f"{os.path.join(nvidia_root, 'cuda_nvcc')}")
    assert environment["CUDA_CACHE_MAXSIZE"] == str(4 * 1024 ** 3)
    assert environment["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"


def test_user_cuda_settings_win(tmp_path):
    nvidia_root = _fake_nvidia_root(str(tmp_path))
    environment = cuda_environment(nvidia_root, {
        "XLA_FLAGS": "--xla_gpu_cuda_data_dir=/usr/local/cuda --xla_dump_to=/tmp/x",
        "CUDA_CACHE_MAXSIZE": "1000", "TF_FORCE_GPU_ALLOW_GROWTH": "false"})
    assert environment["XLA_FLAGS"] == ("--xla_gpu_cuda_data_dir=/usr/local/cuda "
                                        "--xla_dump_to=/tmp/x")
    assert "CUDA_CACHE_MAXSIZE" not in environment
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in environment


def _shared_library(path: str, source: str, *link_args: str) -> None:
    source_path = path + ".c"
    with open(source_path, "w") as source_file:
        source_file.write(source)
    soname = os.path.basename(path)
    subprocess.run(["gcc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", path,
                    source_path, *link_args], check=True, capture_output=True)
    os.remove(source_path)


def test_preload_loads_a_library_after_its_dependency_whatever_the_order(tmp_path):
    """Real ELF files: libaaa needs libzzz by name (as libcusolver needs libcublas),
    and sorts first; neither folder is on LD_LIBRARY_PATH."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not found: cannot build the two test libraries")
    nvidia_root = _fake_nvidia_root(str(tmp_path))
    dependency_dir = os.path.join(nvidia_root, "cuda_runtime", "lib")
    dependent_dir = os.path.join(nvidia_root, "cublas", "lib")
    _shared_library(os.path.join(dependency_dir, "libzzz_cifar_test.so.1"),
                    "int zzz_value(void) { return 41; }\n")
    _shared_library(os.path.join(dependent_dir, "libaaa_cifar_test.so.1"),
                    "int zzz_value(void);\nint aaa_value(void) { return zzz_value() + 1; }\n",
                    f"-L{dependency_dir}", "-l:libzzz_cifar_test.so.1")
    os.symlink("libaaa_cifar_test.so.1", os.path.join(dependent_dir, "libaaa_cifar_test.so"))
    code = ("import ctypes, sys\n"
            "from components.training.runtime import preload_cuda_libraries\n"
            "failed = preload_cuda_libraries(sys.argv[1])\n"
            "assert not failed, failed\n"
            "print(ctypes.CDLL('libaaa_cifar_test.so.1').aaa_value())\n")
    result = subprocess.run([sys.executable, "-c", code, nvidia_root], cwd=REPO_ROOT,
                            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    # Loaded by path, then found by its name as TensorFlow's dlopen looks it up.
    assert result.stdout.strip() == "42"
    # And a library whose dependency is nowhere is reported, not raised.
    os.remove(os.path.join(dependency_dir, "libzzz_cifar_test.so.1"))
    assert preload_cuda_libraries(nvidia_root) == [
        os.path.join(dependent_dir, "libaaa_cifar_test.so.1")]


@pytest.mark.parametrize("device, nvidia_listed, gpus, problem", [
    ("auto", False, 0, None),  # a CPU machine: the CPU tuning, as before
    ("auto", True, 1, None),
    ("cpu", True, 0, None),  # on purpose
    ("auto", True, 0, "this machine has an NVIDIA GPU (nvidia-smi lists it), but "
                      "TensorFlow cannot use it"),
    ("gpu", False, 0, "training.device=gpu, but TensorFlow sees no GPU"),
    ("tpu", False, 0, "training.device: 'tpu' is not one of auto, gpu, cpu"),
])
def test_the_device_decision_names_the_reason_and_the_fix(device, nvidia_listed, gpus,
                                                           problem):
    found = training_device_problem(device, nvidia_listed, gpus)
    if problem is None:
        assert found is None
    else:
        assert found.startswith(problem)
        if device != "tpu":
            assert found.endswith(GPU_FIX) and "--set training.device=cpu" in found


def test_no_nvidia_driver_means_no_gpu_listed(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert runtime.nvidia_gpu_listed() is False


@pytest.mark.parametrize("flags, expected", [
    ("fpu avx2 avx512f avx512_vnni avx512_bf16 fma", True),  # EPYC with AVX-512 BF16
    ("fpu avx2 amx_bf16 amx_tile amx_int8", True),  # Sapphire Rapids
    ("fpu avx2 avx512f avx512_vnni fma", False),  # AVX-512 without bfloat16
    ("fpu avx2 fma", False),
])
def test_bfloat16_instructions_are_read_from_cpuinfo(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\n"
                       f"flags\t\t: {flags}\n")
    assert runtime.cpu_has_bfloat16(str(cpuinfo)) is expected
    assert runtime.cpu_has_bfloat16(str(tmp_path / "missing")) is False


@pytest.mark.parametrize("pays_off, expected", [(True, "mixed_bfloat16"), (False, "float32")])
def test_auto_precision_is_bfloat16_only_on_a_cpu_where_it_pays_off(monkeypatch, pays_off,
                                                                    expected):
    from components.training import device

    monkeypatch.setattr(device, "cpu_bfloat16_pays_off", lambda: pays_off)
    assert device.dtype_policy("auto", on_gpu=False) == expected
    assert device.dtype_policy("auto", on_gpu=True) == "mixed_float16"
    assert device.dtype_policy("off", on_gpu=False) == "float32"  # the way back


def test_nothing_is_timed_on_a_cpu_without_bfloat16(monkeypatch):
    from components.training import device

    monkeypatch.setattr(device, "cpu_has_bfloat16", lambda: False)
    device.cpu_bfloat16_pays_off.cache_clear()
    try:
        assert device.cpu_bfloat16_pays_off() is False
    finally:
        device.cpu_bfloat16_pays_off.cache_clear()
