"""The TFLite variants beside the SavedModel: size, batch-1 latency, accuracy.

1. Unless `--output-dir` already holds a run, the pipeline runs (smoke profile, every
   image, `--epochs` epochs, TFLite on) on the shared sample's 5,085 real training
   images, with the 10,000 test images of the shared JPEG set as its test split: the
   TFLiteExport's check then gives each variant's accuracy on those 10,000 images
   beside the SavedModel's, and their agreement.
2. Size: each variant's file against the SavedModel's variables.
3. Batch-1 latency (p50, p99 over `--calls` calls, after warm-up) of each variant in
   TFLite's interpreter (XNNPACK) with 1 and 2 threads, and of the SavedModel's
   `serving_pixels` signature called in this process, in the same run, on the same
   test images.

Usage: python benchmarks/tflite_export.py [--output-dir /tmp/tflite-bench] [--epochs 8]
The JPEG set is for side-by-side figures only, never a "CIFAR-10 accuracy".
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
SHARED = os.path.join(os.path.dirname(REPO_ROOT), "shared")


def prepare_data(data_dir: str) -> None:
    """The sample's training batches and the JPEG set's test images (decoded) as an
    official python layout."""
    import shutil

    from benchmarks.recipe_data import _decode_images
    from components.data import cifar10_format

    layout_dir = os.path.join(data_dir, "cifar-10-batches-py")
    os.makedirs(layout_dir, exist_ok=True)
    sample = os.path.join(SHARED, "cifar10-sample", "cifar-10-batches-py")
    for name in os.listdir(sample):
        shutil.copy(os.path.join(sample, name), layout_dir)
    arrays = np.load(os.path.join(SHARED, "cifar10-jpeg", "cifar10_jpeg.npz"))
    test = _decode_images(arrays["test_jpeg"], arrays["test_offsets"], None)
    cifar10_format.write_batch(os.path.join(layout_dir, "test_batch"), test,
                               arrays["test_labels"].astype(np.int64))


def run_pipeline(data_dir: str, output_dir: str, epochs: int) -> None:
    # The smoke profile's in-process Beam at full size; the recipe's schedule shape
    # over `epochs`, its rate scaled to a batch of 128.
    subprocess.run([
        sys.executable, "-m", "pipeline", "run", "--profile", "smoke", "--data-dir", data_dir,
        "--output-dir", output_dir, "--set", "data.images_per_file=none",
        "--set", f"training.epochs={epochs}", "--set", "training.batch_size=128",
        "--set", f"training.lr_knots=0,{max(1, epochs * 5 // 24)},{epochs}",
        "--set", "training.lr_values=0,0.1,0", "--set", "tflite.variants=float16,int8",
        "--set", "push.infra_validation=off"], cwd=REPO_ROOT, check=True)


def _latency_ms(call, images: np.ndarray, calls: int) -> tuple:
    for image in images[:10]:
        call(image[None])
    times = []
    for index in range(calls):
        started = time.perf_counter()
        call(images[index % len(images)][None])
        times.append(1000 * (time.perf_counter() - started))
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", default="/tmp/tflite-bench")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()

    root = os.path.join(args.output_dir, "pipeline_root", "cifar10-resnet9-smoke")
    if not glob.glob(os.path.join(root, "TFLiteExport", "tflite_models", "*")):
        data_dir = os.path.join(args.output_dir, "data")
        if not os.path.isdir(data_dir):
            prepare_data(data_dir)
        started = time.monotonic()
        run_pipeline(data_dir, args.output_dir, args.epochs)
        print(f"pipeline run: {time.monotonic() - started:.0f} s")

    from components.training.runtime import prepare_tensorflow
    prepare_tensorflow()
    import tensorflow as tf

    from components.contract import (PIXELS_INPUT, PIXELS_SIGNATURE, TFLITE_CHECK_FILE,
                                     TFLITE_INPUT, TFLITE_OUTPUT, TFLITE_SIGNATURE)
    from components.tflite.component import decode_images

    models_uri = max(glob.glob(os.path.join(root, "TFLiteExport", "tflite_models", "*")),
                     key=os.path.getmtime)
    model_uri = max(glob.glob(os.path.join(root, "Trainer", "model", "*")),
                    key=os.path.getmtime)
    saved_model_dir = os.path.join(model_uri, "Format-Serving")
    with open(os.path.join(models_uri, TFLITE_CHECK_FILE)) as check_file:
        check = json.load(check_file)
    examples = max(glob.glob(os.path.join(root, "Cifar10ExampleGen", "examples", "*")),
                   key=os.path.getmtime)
    serialized = [record.numpy() for record in tf.data.TFRecordDataset(
        sorted(glob.glob(os.path.join(examples, "Split-test", "*"))),
        compression_type="GZIP").take(200)]
    pixels = decode_images(serialized)

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}")
    variables_bytes = sum(os.path.getsize(path) for path in glob.glob(
        os.path.join(saved_model_dir, "variables", "*")))
    print(f"SavedModel variables: {variables_bytes / 2**20:.1f} MiB; accuracy on "
          f"{check['saved_model']['test_images']:,} test images "
          f"{check['saved_model']['accuracy']:.2%}")
    for variant, outcome in check["variants"].items():
        print(f"  {variant:<8} {outcome['size_bytes'] / 2**20:5.1f} MiB "
              f"({variables_bytes / outcome['size_bytes']:.1f}x smaller), accuracy "
              f"{outcome['accuracy']:.2%} (drop {100 * outcome['drop']:+.2f} points), "
              f"agrees with the SavedModel on {outcome['agreement']:.2%}, "
              f"{'passed' if outcome['passed'] else 'NOT passed'}")

    serve = tf.saved_model.load(saved_model_dir).signatures[PIXELS_SIGNATURE]
    saved_p50, saved_p99 = _latency_ms(
        lambda image: serve(**{PIXELS_INPUT: tf.constant(image)}), pixels, args.calls)
    print(f"batch-1 latency, {args.calls} calls (p50 / p99 ms):")
    print(f"  SavedModel serving_pixels, in process: {saved_p50:.2f} / {saved_p99:.2f}")
    for variant, outcome in check["variants"].items():
        with open(os.path.join(models_uri, outcome["file"]), "rb") as model_file:
            content = model_file.read()
        for threads in (1, 2):
            runner = tf.lite.Interpreter(model_content=content, num_threads=threads
                                         ).get_signature_runner(TFLITE_SIGNATURE)
            p50, p99 = _latency_ms(lambda image: runner(**{TFLITE_INPUT: image})[TFLITE_OUTPUT],
                                   pixels, args.calls)
            print(f"  {variant:<8} {threads} thread(s): {p50:.2f} / {p99:.2f} "
                  f"({saved_p50 / p50:.1f}x the SavedModel's p50)")


if __name__ == "__main__":
    main()
