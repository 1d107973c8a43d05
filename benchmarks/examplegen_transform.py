"""Throughput of ExampleGen + Transform on a full-size CIFAR-10, beside a numpy baseline.

Synthesizes 50,000 train + 10,000 test images in the official binary layout, then in
the same run:
- baseline: plain numpy reads the same files, computes the same per-channel mean/std
  over the train split, and writes the same two sets of gzipped TFRecords (raw
  tf.Examples as ExampleGen writes them, Z-scored ones as Transform writes them);
- the pipeline up to Transform (ExampleGen, StatisticsGen, SchemaGen, Transform: a
  TFX partial run) under each Beam running mode asked for, timing each component
  from ML Metadata.

Prints a table and one JSON line. Usage:
  python benchmarks/examplegen_transform.py [--modes in_memory,multi_processing]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pipeline_config  # noqa: E402
from components.contract import IMAGE_SHAPE, NUM_CLASSES, TRAIN_SPLIT  # noqa: E402
from components.data import cifar10_format, source as data_source  # noqa: E402


def synthesize(root: str, train_images: int, test_images: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    per_batch = train_images // 5

    def batch(count):
        return (rng.integers(0, 256, (count,) + IMAGE_SHAPE, dtype=np.uint8),
                rng.integers(0, NUM_CLASSES, count))

    cifar10_format.write_dataset(root, cifar10_format.BINARY_LAYOUT,
                                 [batch(per_batch) for _ in range(5)], batch(test_images))


def numpy_baseline(source: data_source.DataSource, out_dir: str) -> dict:
    import tensorflow as tf

    from components.contract import IMAGE_XF_KEY, LABEL_XF_KEY
    from components.data.example_gen import to_example

    started = time.perf_counter()
    splits = {split: [cifar10_format.read_batch(path)
                      for path in data_source.matching_files(source, pattern)]
              for split, pattern in source.split_patterns().items()}
    read_s = time.perf_counter() - started
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for split, batches in splits.items():
        with tf.io.TFRecordWriter(os.path.join(out_dir, f"raw-{split}.gz"), options) as writer:
            for batch in batches:
                for image_id, image, label in zip(batch.ids, batch.images, batch.labels):
                    writer.write(to_example(image_id, image, label).SerializeToString())
    raw_written_s = time.perf_counter() - started
    train_pixels = np.concatenate([b.images for b in splits[TRAIN_SPLIT]]).reshape(-1, 3)
    mean = train_pixels.mean(axis=0, dtype=np.float64)
    std = train_pixels.std(axis=0, dtype=np.float64)
    stats_s = time.perf_counter() - started
    for split, batches in splits.items():
        with tf.io.TFRecordWriter(os.path.join(out_dir, f"xf-{split}.gz"), options) as writer:
            for batch in batches:
                normalised = ((batch.images - mean) / std).astype(np.float32)
                for image, label in zip(normalised, batch.labels):
                    writer.write(tf.train.Example(features=tf.train.Features(feature={
                        IMAGE_XF_KEY: tf.train.Feature(
                            float_list=tf.train.FloatList(value=image.ravel())),
                        LABEL_XF_KEY: tf.train.Feature(
                            int64_list=tf.train.Int64List(value=[int(label)])),
                    })).SerializeToString())
    total_s = time.perf_counter() - started
    return {"read_s": round(read_s, 1), "raw_records_s": round(raw_written_s - read_s, 1),
            "statistics_s": round(stats_s - raw_written_s, 1),
            "transformed_records_s": round(total_s - stats_s, 1), "total_s": round(total_s, 1)}


def pipeline_run(data_root: str, out_dir: str, mode: str) -> dict:
    from pipeline import local_runner

    config = pipeline_config.load("smoke", (
        f"data.data_dir={data_root}", f"output_dir={out_dir}", "data.images_per_file=none",
        f"beam.direct_running_mode={mode}", "beam.direct_num_workers=0",
        f"pipeline_name=benchmark-{mode}"))
    started = time.perf_counter()
    summary = local_runner.run(config, to_nodes=["Transform"])
    wall_s = time.perf_counter() - started
    seconds = {name: c["seconds"] for name, c in summary["components"].items()}
    return {"wall_s": round(wall_s, 1), "components_s": seconds,
            "examplegen_plus_transform_s": round(
                seconds["Cifar10ExampleGen"] + seconds["Transform"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, default=50000)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--modes", default="in_memory,multi_processing")
    parser.add_argument("--work-dir", help="default: a temporary directory")
    args = parser.parse_args()

    work_dir = args.work_dir or tempfile.mkdtemp(prefix="cifar10-benchmark-")
    data_root = os.path.join(work_dir, "data")
    images = args.train_images + args.test_images
    print(f"Synthesizing {args.train_images} + {args.test_images} images in {data_root}",
          flush=True)
    synthesize(data_root, args.train_images, args.test_images)
    source = data_source.locate(data_root)

    baseline_dir = os.path.join(work_dir, "baseline")
    os.makedirs(baseline_dir, exist_ok=True)
    print("numpy baseline ...", flush=True)
    baseline = numpy_baseline(source, baseline_dir)
    results = {"machine": f"{platform.processor() or platform.machine()}, "
                          f"{os.cpu_count()} cores",
               "images": images, "numpy_baseline": baseline, "pipeline": {}}
    for mode in args.modes.split(","):
        print(f"pipeline, Beam {mode} ...", flush=True)
        results["pipeline"][mode] = pipeline_run(data_root, os.path.join(work_dir, mode), mode)

    print(f"\n{images} images, {results['machine']}")
    print(f"{'what':44s} {'seconds':>8s} {'images/s':>9s} {'vs numpy':>9s}")
    print(f"{'numpy baseline (read, stats, both writes)':44s} {baseline['total_s']:8.1f} "
          f"{images / baseline['total_s']:9.0f} {1.0:9.2f}")
    for mode, run in results["pipeline"].items():
        pair_s = run["examplegen_plus_transform_s"]
        print(f"{'ExampleGen + Transform, ' + mode:44s} {pair_s:8.1f} {images / pair_s:9.0f} "
              f"{baseline['total_s'] / pair_s:9.2f}")
        print(f"{'  whole pipeline wall clock, ' + mode:44s} {run['wall_s']:8.1f}")
        for name, seconds in run["components_s"].items():
            print(f"{'    ' + name:44s} {seconds:8.1f}")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
