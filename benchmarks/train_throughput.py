"""ResNet9 training throughput on this machine, beside its matmul ceiling.

For each batch size and each variant, times real training steps of the Trainer's
`train` (augmentation, L2 penalty, SGD Nesterov, the per-step schedule) on random data,
each variant in its own process so dtype policies and runtime settings do not leak:
- `float32`: the project's CPU runtime settings (components/training/runtime.py: oneDNN on,
  one inter-op thread), as `python -m pipeline run` applies them;
- `float32-tf-defaults`: TensorFlow's own defaults, the baseline for those settings;
- `xla`, `mixed` (bfloat16 on a CPU, float16 on a GPU): with the project's settings.
Reports images/s and the achieved FLOP/s (2.3 GFLOP per training image) against a
large float32 matmul measured in the same run under each setting. With
`--torch-python PY` (an interpreter with PyTorch) a plain PyTorch ResNet9 step runs in
the same run too (benchmarks/torch_resnet9_step.py) in each of PyTorch's CPU settings
(float32, channels-last, and bfloat16 autocast with and without it where the CPU has
bfloat16), and every figure is given as a ratio to the fastest of them: PyTorch at its
best on this CPU. Prints a table and one JSON line.

  python benchmarks/train_throughput.py [--batch-sizes 128,512] [--steps 6] \
      [--variants float32,float32-tf-defaults,xla,mixed] [--torch-python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_FLOP_PER_IMAGE = 2.3e9
TIMED_EPOCHS = 3


def matmul_flops(size: int = 4096, repeats: int = 5) -> float:
    import tensorflow as tf

    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    tf.matmul(a, b).numpy()
    started = time.perf_counter()
    for _ in range(repeats):
        tf.matmul(a, b).numpy()
    return 2 * size ** 3 * repeats / (time.perf_counter() - started)


def measure_variant(variant: str, batch_size: int, steps: int) -> dict:
    """Runs in a child process: one variant, one batch size."""
    import keras
    import numpy as np
    import tensorflow as tf

    from components.contract import IMAGE_SHAPE, NUM_CLASSES
    from components.training.config import training_config
    from components.training.train import train

    gpu = bool(tf.config.list_physical_devices("GPU"))
    mixed = ("float16" if gpu else "bfloat16") if variant == "mixed" else "off"
    matmul_gflops = matmul_flops() / 1e9
    # Epoch 1 traces and compiles; the median of the next TIMED_EPOCHS is the rate (this
    # machine is a VM whose speed varies by tens of percent from minute to minute).
    settings = training_config("resnet9", epochs=1 + TIMED_EPOCHS, batch_size=batch_size,
                               eval_every_epoch=False,
                               xla="on" if variant == "xla" else "off",
                               mixed_precision=mixed)
    rng = np.random.default_rng(0)
    count = batch_size * steps
    images = rng.normal(size=(count,) + IMAGE_SHAPE).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, count)
    epoch_seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.started)

    work_dir = os.path.join("/tmp", f"train-throughput-{os.getpid()}")
    with open(os.devnull, "w") as quiet:
        train(settings, (images, labels), (images[:batch_size], labels[:batch_size]),
              os.path.join(work_dir, "run"), os.path.join(work_dir, "backup"), stream=quiet,
              extra_callbacks=[EpochTimer()])
    images_per_second = count / float(np.median(epoch_seconds[1:]))
    return {"variant": variant, "batch_size": batch_size, "device": "GPU" if gpu else "CPU",
            "matmul_gflops": round(matmul_gflops, 1),
            "images_per_second": round(images_per_second, 1),
            "achieved_gflops": round(images_per_second * TRAIN_FLOP_PER_IMAGE / 1e9, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="128,512")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    parser.add_argument("--variants", default="float32,float32-tf-defaults,xla,mixed")
    parser.add_argument("--torch-python", help="a Python with PyTorch, for the reference")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "BATCH", "STEPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, REPO_ROOT)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child:
        variant, batch_size, steps = args.child
        print(json.dumps(measure_variant(variant, int(batch_size), int(steps))))
        return

    from components.training.runtime import CPU_TRAINING_ENVIRONMENT, apply_cpu_training_defaults

    results = {"cpu_count": os.cpu_count(), "runs": [], "torch": {}}
    for batch_size in args.batch_sizes.split(","):
        torch_rate = None
        if args.torch_python:
            torch_run = subprocess.run(
                [args.torch_python, os.path.join(REPO_ROOT, "benchmarks", "torch_resnet9_step.py"),
                 "--batch-size", batch_size, "--steps", str(args.steps)],
                capture_output=True, text=True)
            if torch_run.returncode == 0:
                results["torch"][batch_size] = json.loads(torch_run.stdout.strip().splitlines()[-1])
                reference = results["torch"][batch_size]
                torch_rate = reference["images_per_second"]
                for setting, rate in reference["settings"].items():
                    print(f"CPU batch {batch_size:>4s} pytorch {setting:19s} {rate:8.1f} "
                          f"images/s" + ("  (the best: the reference)"
                                         if setting == reference["best_setting"] else ""),
                          flush=True)
            else:
                print(f"pytorch batch {batch_size}: failed\n{torch_run.stderr[-2000:]}")
        for variant in args.variants.split(","):
            environment = {key: value for key, value in os.environ.items()
                           if key not in CPU_TRAINING_ENVIRONMENT}
            if variant != "float32-tf-defaults":
                apply_cpu_training_defaults(environment)
            child = subprocess.run(
                [sys.executable, __file__, "--child", variant, batch_size, str(args.steps)],
                capture_output=True, text=True, cwd=REPO_ROOT, env=environment)
            if child.returncode:
                print(f"{variant} batch {batch_size}: failed\n{child.stderr[-2000:]}")
                continue
            run = json.loads(child.stdout.strip().splitlines()[-1])
            run["fraction_of_matmul"] = round(run["achieved_gflops"] / run["matmul_gflops"], 3)
            if torch_rate:
                run["vs_pytorch"] = round(run["images_per_second"] / torch_rate, 2)
                run["vs_pytorch_float32"] = round(
                    run["images_per_second"]
                    / results["torch"][batch_size]["float32_images_per_second"], 2)
            results["runs"].append(run)
            print(f"{run['device']} batch {batch_size:>4s} {variant:20s} "
                  f"{run['images_per_second']:8.1f} images/s  {run['achieved_gflops']:7.1f} "
                  f"GFLOP/s  ({100 * run['fraction_of_matmul']:.0f}% of a "
                  f"{run['matmul_gflops']:.0f} GFLOP/s matmul)"
                  + (f"  {run['vs_pytorch']:.2f}x PyTorch's best" if torch_rate else ""),
                  flush=True)
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
