"""Time of the Evaluator (TFMA) on a full-size 10,000-image test split, beside calling
the same SavedModel signature in-process on the same examples (the limit).

Synthesizes a small train split (the model's quality does not matter here) and a
10,000-image test batch, runs the smoke profile's pipeline with the full profile's
export (flip test-time augmentation on), then
- reads the Evaluator's time from ML Metadata (first run: no baseline, one model);
- runs the Evaluator again against the now-blessed baseline (two models evaluated);
- calls `serving_examples` in-process over the same 10,000 serialized examples.

Usage: python benchmarks/evaluator.py [--test-images 10000] [--batch 256]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline_config  # noqa: E402
from benchmarks.examplegen_transform import synthesize  # noqa: E402


def in_process_seconds(model_dir: str, examples_uri: str, batch: int) -> tuple:
    import tensorflow as tf

    from components.contract import EXAMPLES_INPUT, EXAMPLES_SIGNATURE, TEST_SPLIT
    files = glob.glob(os.path.join(examples_uri, f"Split-{TEST_SPLIT}", "*"))
    serialized = [record.numpy() for record in
                  tf.data.TFRecordDataset(files, compression_type="GZIP")]
    signature = tf.saved_model.load(model_dir).signatures[EXAMPLES_SIGNATURE]
    signature(**{EXAMPLES_INPUT: tf.constant(serialized[:batch])})  # trace and warm up
    started = time.perf_counter()
    for start in range(0, len(serialized), batch):
        signature(**{EXAMPLES_INPUT: tf.constant(serialized[start:start + batch])})
    return time.perf_counter() - started, len(serialized)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-images", type=int, default=10_000)
    parser.add_argument("--train-images", type=int, default=640)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    from pipeline import local_runner

    work_dir = tempfile.mkdtemp(prefix="evaluator-benchmark-")
    data_dir = os.path.join(work_dir, "data")
    synthesize(data_dir, args.train_images, args.test_images)
    base = ("smoke", (f"data.data_dir={data_dir}", f"output_dir={work_dir}/out",
                      "data.images_per_file=none", "training.epochs=1",
                      "training.tta_flip=true"))
    first = local_runner.run(pipeline_config.load(*base))
    # A different gate re-runs only the Evaluator (and Pusher), now with a baseline.
    second = local_runner.run(pipeline_config.load(
        base[0], base[1] + ("evaluation.accuracy_threshold=0.001",)))
    evaluator_first = first["components"]["Evaluator"]["seconds"]
    evaluator_second = second["components"]["Evaluator"]["seconds"]
    assert second["decision"]["baseline_model"], "the second run found no baseline"
    model_dir = os.path.join(first["components"]["Trainer"]["outputs"]["model"],
                             "Format-Serving")
    limit, count = in_process_seconds(
        model_dir, first["components"]["Cifar10ExampleGen"]["outputs"]["examples"],
        args.batch)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'step':<58}{'seconds':>9}{'images/s':>10}{'vs in-process':>15}")
    rows = [
        ("in-process serving_examples, batch %d (the limit)" % args.batch, limit),
        ("Evaluator, candidate only (first run)", evaluator_first),
        ("Evaluator, candidate + baseline (later runs)", evaluator_second),
    ]
    for name, seconds in rows:
        print(f"{name:<58}{seconds:>9.1f}{count / seconds:>10.1f}{seconds / limit:>14.2f}x")
    print(json.dumps({"test_images": count, "in_process_s": round(limit, 1),
                      "evaluator_first_s": evaluator_first,
                      "evaluator_with_baseline_s": evaluator_second,
                      "work_dir": work_dir}))


if __name__ == "__main__":
    main()
