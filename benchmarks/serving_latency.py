"""Serving latency and throughput on loopback, beside the SavedModel called in-process
in the same run (the limit).

- batch 1: p50/p99 latency of sequential requests (PNG bytes in, classes out);
- batch 64: images/s with several concurrent clients.
For REST and gRPC against `python -m serving serve` (the embedded server; TF Serving
itself where `--backend` finds it), and for the signature called in this process.

Usage: python benchmarks/serving_latency.py --model-base-path outputs/serving_model/cifar10
Without --model-base-path the smoke pipeline runs on synthetic data first to push one
(the full ResNet9 with flip TTA; its weights do not matter for speed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def push_a_model() -> str:
    import pipeline_config
    from benchmarks.examplegen_transform import synthesize
    from pipeline import local_runner

    work_dir = tempfile.mkdtemp(prefix="serving-benchmark-")
    synthesize(os.path.join(work_dir, "data"), train_images=160, test_images=32)
    config = pipeline_config.load("smoke", (f"data.data_dir={work_dir}/data",
                                            f"output_dir={work_dir}/out",
                                            "training.epochs=1", "training.batch_size=32"))
    local_runner.run(config)
    return config.serving_model_base_path


def latencies(call, images, repeats: int) -> dict:
    call([images[0]])  # warm-up
    seconds = []
    for index in range(repeats):
        started = time.perf_counter()
        call([images[index % len(images)]])
        seconds.append(time.perf_counter() - started)
    return {"p50_ms": 1000 * float(np.percentile(seconds, 50)),
            "p99_ms": 1000 * float(np.percentile(seconds, 99))}


def throughput(make_call, images, batch: int, clients: int, requests_per_client: int) -> float:
    request = [images[index % len(images)] for index in range(batch)]
    calls = [make_call() for _ in range(clients)]
    calls[0](request)  # warm-up
    errors = []

    def client(call):
        try:
            for _ in range(requests_per_client):
                call(request)
        except Exception as error:  # reported after the run
            errors.append(error)

    threads = [threading.Thread(target=client, args=(call,)) for call in calls]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} clients failed: {errors[0]}")
    return clients * requests_per_client * batch / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base-path")
    parser.add_argument("--model-name", default="cifar10")
    parser.add_argument("--repeats", type=int, default=200, help="batch-1 requests")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests-per-client", type=int, default=8)
    args = parser.parse_args()

    import tensorflow as tf

    from serving.client import connect
    from serving.model_server import choose_backend
    from components.contract import (DEFAULT_SIGNATURE, IMAGE_SHAPE, IMAGES_INPUT,
                                     newest_version)
    from tests.support.server_process import EmbeddedServerProcess

    base_path = args.model_base_path or push_a_model()
    version_dir = newest_version(base_path)
    if version_dir is None:
        sys.exit(f"error: --model-base-path {base_path}: no version with a saved_model.pb")
    rng = np.random.default_rng(1)
    images = [tf.io.encode_png(image).numpy() for image in
              rng.integers(0, 256, (args.batch,) + IMAGE_SHAPE, dtype=np.uint8)]
    signature = tf.saved_model.load(version_dir).signatures[DEFAULT_SIGNATURE]

    def in_process(batch_images):
        return signature(**{IMAGES_INPUT: tf.constant(batch_images)})

    backend, why = choose_backend("auto")
    print(f"Server backend: {backend} ({why})", flush=True)
    server = EmbeddedServerProcess(base_path, args.model_name)
    try:
        ways = {
            "in-process": lambda: in_process,
            "REST": lambda: connect(server.rest_url, args.model_name).predict,
            "gRPC": lambda: connect(server.grpc_target, args.model_name, grpc=True).predict,
        }
        results = {}
        for name, make_call in ways.items():
            results[name] = latencies(make_call(), images, args.repeats)
            results[name]["images_per_s"] = throughput(
                make_call, images, args.batch, args.clients, args.requests_per_client)
            print(f"{name}: {results[name]}", flush=True)
    finally:
        server.stop()
    limit = results["in-process"]
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"batch-{args.batch} throughput with {args.clients} concurrent clients")
    print(f"{'':<12}{'p50 ms':>9}{'p99 ms':>9}{'p50 vs in-process':>19}"
          f"{'images/s':>10}{'vs in-process':>15}")
    for name, row in results.items():
        print(f"{name:<12}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
              f"{row['p50_ms'] / limit['p50_ms']:>18.2f}x{row['images_per_s']:>10.1f}"
              f"{row['images_per_s'] / limit['images_per_s']:>14.0%}")
    print(json.dumps({name: {key: round(value, 2) for key, value in row.items()}
                      for name, row in results.items()}))


if __name__ == "__main__":
    main()
