"""Where and how the Trainer computes: GPU or CPU, the Keras dtype policy, XLA and the
tf.distribute strategy, from the `training` settings."""

from __future__ import annotations

import dataclasses
import functools
import time

import tensorflow as tf

from components.console import UserError
from components.training.runtime import (cpu_has_bfloat16, nvidia_gpu_listed,
                                        training_device_problem)


def gpu_available() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


class TrainingDeviceError(UserError, RuntimeError):
    """The run must not start on this machine with this training.device."""


def check_training_device(device: str) -> None:
    """Raises TrainingDeviceError when TensorFlow cannot train where training.device
    says (or, with auto, when the driver lists a GPU that TensorFlow cannot use)."""
    problem = training_device_problem(device, nvidia_gpu_listed(),
                                      len(tf.config.list_physical_devices("GPU")))
    if problem:
        raise TrainingDeviceError(problem)


def use_gpu(device: str) -> bool:
    """training.device: auto trains on a GPU exactly when TensorFlow sees one, gpu
    insists on one, cpu trains on the CPU even when a GPU is there."""
    check_training_device(device)
    return device != "cpu" and gpu_available()


def describe(on_gpu: bool) -> str:
    """What the Trainer runs on, for its first line and metrics.json."""
    if not on_gpu:
        return "CPU"
    names = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
             for gpu in tf.config.list_physical_devices("GPU")]
    return "GPU: " + ", ".join(names)


def on_gpu_setting(setting: str, name: str, on_gpu: bool) -> bool:
    """An auto | on | off setting: auto means on exactly when training on a GPU."""
    if setting not in ("auto", "on", "off"):
        raise ValueError(f"training.{name}: {setting!r} is not auto, on or off")
    return on_gpu if setting == "auto" else setting == "on"


# bfloat16 must take at most this share of float32's time to be chosen: where it pays
# off it takes about 0.6 (EPYC with avx512_bf16), where it is emulated many times 1.
BFLOAT16_TIME_SHARE = 0.8


@functools.lru_cache(maxsize=None)
def cpu_bfloat16_pays_off(repeats: int = 3) -> bool:
    """Whether this CPU trains in bfloat16 clearly faster than in float32: it has
    bfloat16 instructions (AVX-512 BF16 or AMX), and one ResNet9-sized convolution's
    forward and backward pass (about 4 GFLOP) on the CPU is fastest in bfloat16 by the
    BFLOAT16_TIME_SHARE margin. Well under a second, once per process; it guards
    against a TensorFlow build or CPU that emulates bfloat16, which trains many times
    slower than float32."""
    if not cpu_has_bfloat16():
        return False

    def fastest_seconds(dtype) -> float:
        with tf.device("/CPU:0"):
            images = tf.cast(tf.random.normal([16, 16, 16, 128], seed=0), dtype)
            kernel = tf.Variable(tf.cast(tf.random.normal([3, 3, 128, 128], seed=1), dtype))

            @tf.function
            def step():
                with tf.GradientTape() as tape:
                    tape.watch(images)
                    outputs = tf.nn.conv2d(images, kernel, 1, "SAME")
                    loss = tf.reduce_sum(tf.cast(outputs, tf.float32))
                return tape.gradient(loss, [kernel, images])

            step()  # traced, and the kernels chosen
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                [gradient.numpy() for gradient in step()]
                timings.append(time.perf_counter() - started)
        return min(timings)

    return fastest_seconds(tf.bfloat16) < BFLOAT16_TIME_SHARE * fastest_seconds(tf.float32)


def dtype_policy(setting: str, on_gpu: bool, may_time_cpu: bool = True) -> str:
    """Keras dtype policy for training.mixed_precision. auto: float16 on a GPU;
    bfloat16 on a CPU where it pays off (`cpu_bfloat16_pays_off`): there ResNet9
    trains 1.5 times as fast as in float32, within noise of its accuracy on a short
    schedule (docs/BENCHMARKS.md); float32 elsewhere, and on the CPUs of a
    multi-worker cluster (`may_time_cpu` False), whose workers must all train in one
    policy that a timing on each could split."""
    policies = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
    if setting == "auto":
        if on_gpu:
            return "mixed_float16"
        return "mixed_bfloat16" if may_time_cpu and cpu_bfloat16_pays_off() else "float32"
    if setting not in policies:
        raise ValueError(f"training.mixed_precision: {setting!r} is not auto, off, float16 "
                         f"or bfloat16")
    return policies[setting]


def make_strategy(name: str, on_gpu: bool = True) -> tf.distribute.Strategy:
    if name == "default":
        # training.device=cpu on a machine whose GPU TensorFlow sees: pin the CPU.
        if not on_gpu and gpu_available():
            return tf.distribute.OneDeviceStrategy("/cpu:0")
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # MirroredStrategy() takes every GPU, or the one CPU without a GPU; a CPU split
        # into logical devices (tf.config.set_logical_device_configuration) is mirrored
        # across them, which is how the strategy is exercised without GPUs.
        cpus = tf.config.list_logical_devices("CPU")
        if not gpu_available() and len(cpus) > 1:
            return tf.distribute.MirroredStrategy([device.name for device in cpus])
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        # The cluster and this process's task come from TF_CONFIG; without it, one worker.
        return KerasMultiWorkerMirroredStrategy()
    raise ValueError(f"training.distribution: {name!r} is not default, mirrored or "
                     f"multi_worker_mirrored")


class KerasMultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """MultiWorkerMirroredStrategy with the `reduce` that Keras 3's fit() expects of it
    (keras-team/keras#20585: fit fails under the plain strategy):
    - a nest of values is reduced leaf by leaf, as MirroredStrategy does: fit reduces
      its first (images, labels) batch to build the model symbolically;
    - a scalar reduced "along axis 0" is reduced across replicas only: after every
      step fit reduces each loss and metric value that way."""

    def reduce(self, reduce_op, value, axis):
        def reduce_leaf(leaf):
            rank = self.experimental_local_results(leaf)[0].shape.rank
            return super(KerasMultiWorkerMirroredStrategy, self).reduce(
                reduce_op, leaf, None if rank == 0 else axis)

        return tf.nest.map_structure(reduce_leaf, value)


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """The processes that train together (TF_CONFIG's chief and workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver else {}
    return max(1, len(cluster.get("chief", [])) + len(cluster.get("worker", [])))


@dataclasses.dataclass(frozen=True)
class TrainingSetup:
    """Where and how this process trains, decided once before any TensorFlow op runs."""

    on_gpu: bool
    strategy: tf.distribute.Strategy
    policy: str  # the Keras dtype policy
    xla: bool

    @property
    def is_chief(self) -> bool:
        """Whether this process writes what training leaves behind (checkpoints,
        TensorBoard logs, the export): always, except for the non-chief workers of a
        multi-worker cluster, which hold the same weights."""
        return self.strategy.extended.should_checkpoint

    @property
    def workers(self) -> int:
        return worker_count(self.strategy)


def training_setup(hparams) -> TrainingSetup:
    """The strategy first: MultiWorkerMirroredStrategy configures collective ops, which
    TensorFlow refuses once any op has run, and the bfloat16 probe and the split's
    loading run ops. `hparams` is a TrainingConfig."""
    on_gpu = use_gpu(hparams.device)
    strategy = make_strategy(hparams.distribution, on_gpu)
    return TrainingSetup(on_gpu=on_gpu, strategy=strategy,
                         policy=dtype_policy(hparams.mixed_precision, on_gpu,
                                             may_time_cpu=worker_count(strategy) == 1),
                         xla=on_gpu_setting(hparams.xla, "xla", on_gpu))
