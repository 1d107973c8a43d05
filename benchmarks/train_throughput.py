"""ResNet9 training throughput on this machine, beside its matmul ceiling.

For each batch size and each variant (float32; float32 with XLA; mixed bfloat16 on a
CPU or mixed float16 on a GPU), times real training steps of the Trainer's `train`
(augmentation, L2 penalty, SGD Nesterov, the per-step schedule) on random data, each
variant in its own process so dtype policies do not leak. Reports images/s and the
achieved FLOP/s (2.3 GFLOP per training image) against a large float32 matmul
measured in the same run. Prints a table and one JSON line.

  python benchmarks/train_throughput.py [--batch-sizes 128,512] [--steps 6]
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

    from components.trainer import train
    from components.training_config import TrainingConfig

    gpu = bool(tf.config.list_physical_devices("GPU"))
    mixed = ("float16" if gpu else "bfloat16") if variant == "mixed" else "off"
    settings = TrainingConfig(epochs=2, batch_size=batch_size, eval_every_epoch=False,
                              xla="on" if variant == "xla" else "off", mixed_precision=mixed)
    rng = np.random.default_rng(0)
    count = batch_size * steps
    images = rng.normal(size=(count, 32, 32, 3)).astype(np.float32)
    labels = rng.integers(0, 10, count)
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
    # Epoch 1 includes tracing and compilation; epoch 2 is steady state.
    images_per_second = count / epoch_seconds[-1]
    return {"variant": variant, "batch_size": batch_size, "device": "GPU" if gpu else "CPU",
            "images_per_second": round(images_per_second, 1),
            "achieved_gflops": round(images_per_second * TRAIN_FLOP_PER_IMAGE / 1e9, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="128,512")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    parser.add_argument("--variants", default="float32,xla,mixed")
    parser.add_argument("--child", nargs=3, metavar=("VARIANT", "BATCH", "STEPS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, REPO_ROOT)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.child:
        variant, batch_size, steps = args.child
        print(json.dumps(measure_variant(variant, int(batch_size), int(steps))))
        return

    ceiling = matmul_flops()
    results = {"matmul_gflops": round(ceiling / 1e9, 1), "cpu_count": os.cpu_count(),
               "runs": []}
    print(f"float32 matmul 4096^3: {ceiling / 1e9:.1f} GFLOP/s", flush=True)
    for batch_size in args.batch_sizes.split(","):
        for variant in args.variants.split(","):
            child = subprocess.run(
                [sys.executable, __file__, "--child", variant, batch_size, str(args.steps)],
                capture_output=True, text=True, cwd=REPO_ROOT)
            if child.returncode:
                print(f"{variant} batch {batch_size}: failed\n{child.stderr[-2000:]}")
                continue
            run = json.loads(child.stdout.strip().splitlines()[-1])
            run["fraction_of_matmul"] = round(run["achieved_gflops"] * 1e9 / ceiling, 3)
            results["runs"].append(run)
            print(f"{run['device']} batch {batch_size:>4s} {variant:8s} "
                  f"{run['images_per_second']:8.1f} images/s  {run['achieved_gflops']:7.1f} "
                  f"GFLOP/s  ({100 * run['fraction_of_matmul']:.0f}% of matmul)", flush=True)
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
