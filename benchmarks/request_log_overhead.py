"""What request logging adds to a request, in the same run: batch-1 REST predict
latency (p50, p99) of the embedded server without logging, with logging of every
request, and of the logging proxy (`python -m serving proxy`, every request logged) in
front of the server without logging.

Usage: python benchmarks/request_log_overhead.py [--model-base-path B] [--requests N]
Without --model-base-path the smoke pipeline runs on synthetic data first to push a
model (the full ResNet9 with flip TTA; its weights do not matter for speed).
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

from benchmarks.model_versions import push_a_model  # noqa: E402
from serving.client import connect  # noqa: E402
from tests.support.data import png_images  # noqa: E402
from tests.support.server_process import EmbeddedServerProcess, ProxyProcess  # noqa: E402

WARMUP_REQUESTS = 20


def latencies_ms(url: str, image: bytes, requests: int) -> np.ndarray:
    client = connect(url, "cifar10")
    for _ in range(WARMUP_REQUESTS):
        client.predict([image])
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.predict([image])
        times.append(1000 * (time.perf_counter() - started))
    return np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base-path")
    parser.add_argument("--requests", type=int, default=500, help="per setting")
    args = parser.parse_args()
    base_path = args.model_base_path or push_a_model()[0]
    image = png_images(1)[0]
    results = {}
    with tempfile.TemporaryDirectory(prefix="request-log-") as log_root:
        plain = EmbeddedServerProcess(base_path)
        logging_server = EmbeddedServerProcess(base_path, extra_args=(
            "--log-requests", os.path.join(log_root, "server"), "--log-sampling-rate", "1"))
        proxy = ProxyProcess(plain.rest_url, os.path.join(log_root, "proxy"))
        try:
            # Interleaved rounds, so that drift in the machine's speed hits each alike.
            settings = {"server, no logging": plain.rest_url,
                        "server, every request logged": logging_server.rest_url,
                        "proxy (every request logged) -> server": proxy.url}
            rounds = {name: [] for name in settings}
            for _ in range(5):
                for name, url in settings.items():
                    rounds[name].append(latencies_ms(url, image, args.requests // 5))
        finally:
            proxy.stop()
            logging_server.stop()
            plain.stop()
        logged = {name: sum(os.path.getsize(os.path.join(root, f))
                            for root, _, files in os.walk(os.path.join(log_root, name))
                            for f in files) for name in ("server", "proxy")}
    baseline = np.concatenate(rounds["server, no logging"])
    for name, parts in rounds.items():
        times = np.concatenate(parts)
        results[name] = {
            "requests": len(times), "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p99_ms": round(float(np.percentile(times, 99)), 2),
            "p50_ratio": round(float(np.percentile(times, 50) / np.percentile(baseline, 50)),
                               3),
            "p99_ratio": round(float(np.percentile(times, 99) / np.percentile(baseline, 99)),
                               3)}
    print(f"{'setting':<42}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'p50 x':>8}{'p99 x':>8}")
    for name, figures in results.items():
        print(f"{name:<42}{figures['requests']:>9}{figures['p50_ms']:>9}"
              f"{figures['p99_ms']:>9}{figures['p50_ratio']:>8}{figures['p99_ratio']:>8}")
    print(f"bytes logged: server {logged['server']}, proxy {logged['proxy']}")
    print(json.dumps({"machine": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count(), "results": results, "logged_bytes": logged}))


if __name__ == "__main__":
    main()
