"""Time of the run report on a full-size run: 50,000 + 10,000 synthesized images.

Synthesizes the data as benchmarks/examplegen_transform.py does, runs the whole smoke
pipeline on all of it with training cut to a few steps (the report reads the Trainer's
figures whatever they are; 24 epochs on this CPU take hours), then writes the report
`--repeats` times and prints its parts' seconds beside the run's own time, from its
first component's start to its last one's end in ML Metadata (the baseline: what the
report adds to a run). TFX and TensorFlow are imported before the timings start, as
they are by the time `python -m pipeline run` writes the report. With `--work-dir` of
an earlier invocation the data is reused, and with `--report-only` its latest run too:
only the report is timed.

Prints a table and one JSON line. Usage:
  python benchmarks/report.py [--train-images 50000] [--test-images 10000] [--repeats 3]
                              [--work-dir D [--report-only]]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.training.runtime import prepare_tensorflow  # noqa: E402

prepare_tensorflow()

import pipeline_config  # noqa: E402
from benchmarks.examplegen_transform import synthesize  # noqa: E402
from components.contract import TEST_SPLIT  # noqa: E402


def _timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def time_report(config, repeats: int) -> dict:
    from pipeline.report import examples, facts as run_facts, writer

    metadata_path = os.path.abspath(config.metadata_path)
    parts = {"whole report": [], "facts (MLMD, TFMA, gate, class counts)": [],
             "  class counts, every split": [], "statistics page (TFDV)": [],
             "mistaken test images, found by id": []}
    for _ in range(repeats):
        facts, seconds = _timed(run_facts.gather, metadata_path, config.pipeline_name,
                                config.profile)
        parts["facts (MLMD, TFMA, gate, class counts)"].append(seconds)
        examples_uri = facts["data"]["examples_uri"]
        parts["  class counts, every split"].append(
            _timed(examples.class_counts, examples_uri)[1])
        with tempfile.TemporaryDirectory() as scratch:
            parts["statistics page (TFDV)"].append(_timed(
                writer.statistics_page, facts["data"]["statistics_uri"],
                os.path.join(scratch, writer.STATISTICS_FILE))[1])
        mistakes = facts["evaluation"]["mistakes"] or []
        parts["mistaken test images, found by id"].append(_timed(
            examples.encoded_images, examples_uri, TEST_SPLIT,
            [m["image_id"] for m in mistakes])[1])
        index, seconds = _timed(writer.write_report, metadata_path, config.pipeline_name,
                                config.output_dir, config.profile)
        parts["whole report"].append(seconds)
    return {"index": index, "median_s": {part: round(statistics.median(values), 2)
                                         for part, values in parts.items()},
            "all_s": {part: [round(v, 2) for v in values] for part, values in parts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-images", type=int, default=50000)
    parser.add_argument("--test-images", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--training-steps", type=int, default=2)
    parser.add_argument("--work-dir", help="default: a temporary directory")
    parser.add_argument("--report-only", action="store_true",
                        help="time the report of the work dir's latest run; run nothing")
    args = parser.parse_args()

    work_dir = args.work_dir or tempfile.mkdtemp(prefix="cifar10-report-benchmark-")
    data_root = os.path.join(work_dir, "data")
    if not os.path.isdir(data_root):
        print(f"Synthesizing {args.train_images} + {args.test_images} images in {data_root}",
              flush=True)
        synthesize(data_root, args.train_images, args.test_images)
    config = pipeline_config.load("smoke", (
        f"data.data_dir={data_root}", f"output_dir={os.path.join(work_dir, 'out')}",
        "data.images_per_file=none", "push.infra_validation=off",
        f"training.max_steps={args.training_steps}"))
    from pipeline import local_runner
    from pipeline.report import facts as run_facts

    if not args.report_only:
        print("the whole pipeline ...", flush=True)
        local_runner.run(config)
    facts = run_facts.gather(os.path.abspath(config.metadata_path), config.pipeline_name)
    run, run_s = facts["run"], facts["run"]["seconds"]
    images = sum(facts["data"]["examples"].values())
    print("the report ...", flush=True)
    report = time_report(config, args.repeats)
    results = {"machine": f"{platform.processor() or platform.machine()}, "
                          f"{os.cpu_count()} cores", "images": images,
               "run_s": run_s, "run_id": run["id"],
               "components_s": {c["name"]: c["seconds"] for c in run["components"]},
               **report}

    print(f"\n{images} images, {results['machine']}, report median of {args.repeats}")
    print(f"{'what':50s} {'seconds':>8s} {'vs run':>8s}")
    print(f"{'pipeline run (baseline), first to last component':50s} {run_s:8.1f} {1.0:8.3f}")
    for part, seconds in report["median_s"].items():
        print(f"{part:50s} {seconds:8.2f} {seconds / run_s:8.3f}")
    print(f"report: {report['index']}")
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
