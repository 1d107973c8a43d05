"""Serving latency and throughput on loopback, beside the SavedModel called in-process
in the same run (the limit).

- batch 1: p50/p99 latency of sequential requests (PNG bytes in, classes out);
- batch 64: images/s with several concurrent clients.
For REST and gRPC against `python -m serving serve` (the embedded server; TF Serving
itself where `--backend` finds it), and for the signature called in this process.
- first request after a load: a new version is pushed (a copy of the served one, with
  its warmup file or without: assets.extra left out), and once the server reports it
  AVAILABLE the first batch-1 REST request to it is timed, then a second one (warm);
  `--first-request-rounds` rounds of each, alternating, on the embedded server.
- the export before and after the ExportArchive (`--export-comparison`, on the model
  this script pushes itself): the same weights exported the earlier way (a Keras model
  in a tf.Module, which TF Serving cannot run) and as the Trainer exports them now;
  for each, the seconds a server spends loading a version (`tf.saved_model.load`, and
  now also the load as TF Serving does it first) and the in-process batch-1 latency
  and batch-64 throughput of `serving_default`.

Usage: python benchmarks/serving_latency.py --model-base-path outputs/serving_model/cifar10
Without --model-base-path the smoke pipeline runs on synthetic data first to push one
(the full ResNet9 with flip TTA; its weights do not matter for speed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.model_versions import push_a_model  # noqa: E402


def export_as_before(version_dir: str, config, transform_graph: str) -> str:
    """The pushed version's weights exported the earlier way; returns its directory."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.contract import MODEL_VARIABLES_KEY, WARMUP_REQUESTS_FILE
    from components.training.recipe import build_training_model
    from tests.support import earlier_export

    model = build_training_model(config.training)
    saved = getattr(tf.saved_model.load(version_dir), MODEL_VARIABLES_KEY)
    for variable, value in zip(model.variables, saved):
        variable.assign(value.numpy())
    earlier_dir = os.path.join(tempfile.mkdtemp(prefix="earlier-export-"), "1")
    earlier_export.export_as_before(model, tft.TFTransformOutput(transform_graph), earlier_dir,
                                    config.training.tta_flip, warmup_images=[b"unused"])
    shutil.copyfile(os.path.join(version_dir, WARMUP_REQUESTS_FILE),
                    os.path.join(earlier_dir, WARMUP_REQUESTS_FILE))
    return earlier_dir


def export_comparison(version_dir: str, config, transform_graph: str, images: list,
                      repeats: int, clients: int, requests_per_client: int) -> None:
    """Load time and in-process speed of the earlier export and today's, same weights."""
    import tensorflow as tf

    from components.contract import DEFAULT_SIGNATURE, IMAGES_INPUT
    from serving.load_check import LoadCheckError, check_version

    exports = {"before (tf.Module)": export_as_before(version_dir, config, transform_graph),
               "after (ExportArchive)": version_dir}
    rows = {}
    for name, path in exports.items():
        loads = []
        for _ in range(3):
            started = time.perf_counter()
            signature = tf.saved_model.load(path).signatures[DEFAULT_SIGNATURE]
            loads.append(time.perf_counter() - started)
        try:
            check_seconds = check_version(path).seconds
        except LoadCheckError:
            check_seconds = None  # TF Serving cannot run it: the server refuses it now

        def call(batch_images, signature=signature):
            return signature(**{IMAGES_INPUT: tf.constant(batch_images)})

        rows[name] = {**latencies(call, images, repeats),
                      "images_per_s": throughput(lambda call=call: call, images, len(images),
                                                 clients, requests_per_client),
                      "tf_saved_model_load_s": float(np.median(loads)),
                      "tf_serving_load_check_s": check_seconds}
    print(f"\nThe export before and after, same weights, in process ({len(images)}-image "
          f"batches, {clients} clients); the server's load = tf.saved_model.load, after "
          f"the TF Serving load check (before: TF Serving cannot run it, no check):")
    print(f"{'export':<24}{'p50 ms':>8}{'p99 ms':>8}{'images/s':>10}{'load s':>8}"
          f"{'check s':>9}")
    for name, row in rows.items():
        check = row["tf_serving_load_check_s"]
        print(f"{name:<24}{row['p50_ms']:>8.2f}{row['p99_ms']:>8.2f}"
              f"{row['images_per_s']:>10.1f}{row['tf_saved_model_load_s']:>8.2f}"
              f"{'fails' if check is None else f'{check:.2f}':>9}")
    before, after = rows.values()
    print(f"after/before: p50 {after['p50_ms'] / before['p50_ms']:.2f}x, images/s "
          f"{after['images_per_s'] / before['images_per_s']:.2f}x")
    print(json.dumps({name: {key: None if value is None else round(value, 3)
                             for key, value in row.items()} for name, row in rows.items()}),
          flush=True)


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


def wait_available(rest_url: str, model_name: str, version: int, timeout_s: float = 300):
    """Returns once the server reports `version` AVAILABLE."""
    from serving.client import RestClient, ServingRequestError

    client = RestClient(rest_url, model_name, version=version, timeout=30)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if any(status["state"] == "AVAILABLE"
                   for status in client.status()["model_version_status"]):
                return
        except ServingRequestError:  # not seen by the server yet
            pass
        time.sleep(0.05)
    raise RuntimeError(f"version {version} was not AVAILABLE within {timeout_s:.0f} s")


def _wait_until_listening(rest_url: str, server: subprocess.Popen,
                          timeout_s: float = 300) -> None:
    host, port = rest_url.rsplit("/", 1)[1].rsplit(":", 1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with status {server.returncode}")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not listen on {rest_url} within {timeout_s:.0f} s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def first_request_latencies(version_dir: str, image: bytes, rounds: int, model_name: str,
                            backend: str) -> dict:
    """Milliseconds of the first and the second request to a freshly loaded version,
    with and without its warmup file; the median of `rounds` loads of each.
    `backend`: embedded or tensorflow_model_server (`python -m serving serve --backend`)."""
    from benchmarks.model_versions import push_version
    from serving.client import RestClient

    work_dir = tempfile.mkdtemp(prefix="first-request-")
    base_path = os.path.join(work_dir, model_name)
    push_version(version_dir, base_path, 1)
    rest_url = f"http://127.0.0.1:{_free_port()}"
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", "serve", "--backend", backend, "--host", "127.0.0.1",
         "--rest-port", rest_url.rsplit(":", 1)[1], "--grpc-port", str(_free_port()),
         "--poll-seconds", "0.2", "--model-base-path", base_path, "--model-name", model_name],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = {(warmup, nth): [] for warmup in (True, False) for nth in ("first", "second")}
    try:
        _wait_until_listening(rest_url, server)
        wait_available(rest_url, model_name, 1)
        version = 1
        for _ in range(rounds):
            for with_warmup in (False, True):
                version += 1
                push_version(version_dir, base_path, version, with_warmup=with_warmup)
                wait_available(rest_url, model_name, version)
                client = RestClient(rest_url, model_name, version=version)
                for nth in ("first", "second"):
                    started = time.perf_counter()
                    client.predict([image])
                    seconds[(with_warmup, nth)].append(time.perf_counter() - started)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(work_dir, ignore_errors=True)
    return {f"{'with' if warmup else 'without'} warmup, {nth} request ms":
            1000 * float(np.median(values)) for (warmup, nth), values in seconds.items()}


def first_request_table(version_dir: str, image: bytes, rounds: int, model_name: str) -> None:
    backends = ["embedded"]
    if shutil.which("tensorflow_model_server"):
        backends.append("tensorflow_model_server")
    else:
        print("TF Serving: tensorflow_model_server is not on PATH, not measured")
    figures = {backend: first_request_latencies(version_dir, image, rounds, model_name,
                                                backend) for backend in backends}
    print(f"\nFirst and second REST request (batch 1) to a version just AVAILABLE, ms, "
          f"median of {rounds} loads each:")
    print(f"{'backend':<26}{'warmup':>8}{'first':>9}{'second':>9}{'first/second':>14}")
    for backend, row in figures.items():
        for warmup in ("without", "with"):
            first = row[f"{warmup} warmup, first request ms"]
            second = row[f"{warmup} warmup, second request ms"]
            print(f"{backend:<26}{warmup:>8}{first:>9.1f}{second:>9.1f}{first / second:>13.1f}x")
    print(json.dumps({backend: {name: round(value, 1) for name, value in row.items()}
                      for backend, row in figures.items()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base-path")
    parser.add_argument("--model-name", default="cifar10")
    parser.add_argument("--repeats", type=int, default=200, help="batch-1 requests")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests-per-client", type=int, default=8)
    parser.add_argument("--first-request-rounds", type=int, default=5,
                        help="loads of a new version with and without warmup (0: skip)")
    parser.add_argument("--first-request-only", action="store_true",
                        help="measure only the first request after a load")
    parser.add_argument("--export-comparison", action="store_true",
                        help="the export before and after the ExportArchive, same weights "
                             "(needs the model this script pushes: no --model-base-path)")
    args = parser.parse_args()

    import tensorflow as tf

    from serving.client import connect
    from serving.model_server import choose_backend
    from components.contract import (DEFAULT_SIGNATURE, IMAGE_SHAPE, IMAGES_INPUT,
                                     newest_version)
    from tests.support.server_process import EmbeddedServerProcess

    if args.export_comparison and args.model_base_path:
        sys.exit("error: --export-comparison needs the model this script pushes itself "
                 "(its transform graph): leave out --model-base-path")
    config = transform_graph = None
    if args.model_base_path:
        base_path = args.model_base_path
    else:
        base_path, config, transform_graph = push_a_model()
    version_dir = newest_version(base_path)
    if version_dir is None:
        sys.exit(f"error: --model-base-path {base_path}: no version with a saved_model.pb")
    rng = np.random.default_rng(1)
    images = [tf.io.encode_png(image).numpy() for image in
              rng.integers(0, 256, (args.batch,) + IMAGE_SHAPE, dtype=np.uint8)]
    signature = tf.saved_model.load(version_dir).signatures[DEFAULT_SIGNATURE]

    def in_process(batch_images):
        return signature(**{IMAGES_INPUT: tf.constant(batch_images)})

    if args.export_comparison:
        export_comparison(version_dir, config, transform_graph, images, args.repeats,
                          args.clients, args.requests_per_client)
    if args.first_request_rounds:
        first_request_table(version_dir, images[0], args.first_request_rounds,
                            args.model_name)
    if args.first_request_only:
        return
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
