"""Time of data validation on a full-size CIFAR-10: 50,000 + 10,000 synthesized images.

Synthesizes the data as benchmarks/examplegen_transform.py does, then runs the
pipeline up to the DataGate (ExampleGen, ImportSchemaGen, StatisticsGen with
semantic-domain statistics, ExampleValidator, DataGate; a TFX partial run with Beam
in_memory) and times each component from ML Metadata. In the same run, on the
ExampleGen output just written, TFDV's statistics are computed twice in this process,
without and with the semantic-domain (image) statistics: the baseline StatisticsGen
had before the reviewed schema, and what the image checks add to it.

Prints a table and one JSON line. Usage:
  python benchmarks/validation.py [--train-images 50000] [--test-images 10000]
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

from components.training.runtime import prepare_tensorflow  # noqa: E402

prepare_tensorflow()

import pipeline_config  # noqa: E402
from benchmarks.examplegen_transform import synthesize  # noqa: E402
from components.contract import TRAIN_SPLIT  # noqa: E402

VALIDATION_NODES = ("ImportSchemaGen", "StatisticsGen", "ExampleValidator", "DataGate")


def pipeline_to_gate(data_root: str, out_dir: str) -> dict:
    from pipeline import local_runner
    from pipeline.pipeline import DATA_GATE_ID

    config = pipeline_config.load("smoke", (
        f"data.data_dir={data_root}", f"output_dir={out_dir}", "data.images_per_file=none",
        "beam.direct_running_mode=in_memory"))
    started = time.perf_counter()
    summary = local_runner.run(config, to_nodes=[DATA_GATE_ID])
    return {"wall_s": round(time.perf_counter() - started, 1),
            "components_s": {name: c["seconds"] for name, c in summary["components"].items()},
            "examples": summary["components"]["Cifar10ExampleGen"]["outputs"]["examples"]}


def tfdv_statistics_s(examples_uri: str, semantic: bool) -> float:
    import tensorflow_data_validation as tfdv
    from apache_beam.options.pipeline_options import PipelineOptions

    files = os.path.join(examples_uri, f"Split-{TRAIN_SPLIT}", "*")
    assert glob.glob(files), files
    started = time.perf_counter()
    tfdv.generate_statistics_from_tfrecord(
        files, stats_options=tfdv.StatsOptions(enable_semantic_domain_stats=semantic),
        pipeline_options=PipelineOptions(["--direct_running_mode=in_memory"]))
    return round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, default=50000)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--work-dir", help="default: a temporary directory")
    args = parser.parse_args()

    work_dir = args.work_dir or tempfile.mkdtemp(prefix="cifar10-validation-")
    data_root = os.path.join(work_dir, "data")
    images = args.train_images + args.test_images
    print(f"Synthesizing {args.train_images} + {args.test_images} images in {data_root}",
          flush=True)
    synthesize(data_root, args.train_images, args.test_images)
    print("pipeline up to the DataGate ...", flush=True)
    run = pipeline_to_gate(data_root, os.path.join(work_dir, "out"))
    print("TFDV statistics of the train split, without and with image statistics ...",
          flush=True)
    plain_s = tfdv_statistics_s(run["examples"], semantic=False)
    semantic_s = tfdv_statistics_s(run["examples"], semantic=True)
    validation_s = round(sum(run["components_s"].get(name, 0.0) for name in VALIDATION_NODES), 1)
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "images": images, "pipeline": run, "validation_s": validation_s,
               "train_statistics_plain_s": plain_s, "train_statistics_images_s": semantic_s}

    print(f"\n{images} images, {results['machine']}")
    print(f"{'what':52s} {'seconds':>8s}")
    for name, seconds in run["components_s"].items():
        print(f"{'  ' + name:52s} {seconds:8.1f}")
    print(f"{'validation (schema, statistics, validator, gate)':52s} {validation_s:8.1f}")
    print(f"{'TFDV train statistics, no image statistics':52s} {plain_s:8.1f}")
    print(f"{'TFDV train statistics, with image statistics':52s} {semantic_s:8.1f}"
          f"  ({semantic_s / plain_s:.2f}x)")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
