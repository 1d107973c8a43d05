"""What one request can make the embedded server allocate: its peak resident memory
(VmHWM) after loading the model, then after one predict request of each batch size,
up to the default `--max-batch-size`, after twice as many concurrent full batches as
there are inference slots, and after a request that declares a 20000x20000 image
(refused from its header).

Usage: python benchmarks/request_memory.py --model-base-path outputs/serving_model/cifar10
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import os
import platform
import struct
import sys
import urllib.error
import urllib.request
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peak_rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def predict(url: str, images: list) -> int:
    body = json.dumps({"instances": [{"b64": base64.b64encode(image).decode()}
                                     for image in images]}).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-base-path", required=True)
    args = parser.parse_args()
    from serving.limits import Limits
    from tests.support.server_process import EmbeddedServerProcess

    rng = np.random.default_rng(0)
    import tensorflow as tf
    png = [tf.io.encode_png(image).numpy()
           for image in rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)]
    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    huge = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + b"\0" * 1_000_000)
    server = EmbeddedServerProcess(args.model_base_path)
    url = f"{server.rest_url}/v1/models/cifar10:predict"
    try:
        rows = [("model loaded, before any request", None, peak_rss_mib(server.process.pid))]
        status = predict(url, [huge])
        rows.append(("20000x20000 PNG declared (refused)", status,
                     peak_rss_mib(server.process.pid)))
        for batch in (1, 16, 32, Limits.max_batch_size):
            status = predict(url, [png[i % len(png)] for i in range(batch)])
            rows.append((f"predict, batch {batch}", status, peak_rss_mib(server.process.pid)))
        # Twice as many clients as inference slots, each with a full batch: the others
        # wait for a slot, so the peak is the slots' worth.
        clients = 2 * Limits.max_concurrent_inferences
        full = [png[i % len(png)] for i in range(Limits.max_batch_size)]
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            statuses = set(pool.map(lambda _: predict(url, full), range(clients)))
        rows.append((f"{clients} concurrent predicts, batch {Limits.max_batch_size}",
                     ",".join(map(str, sorted(statuses))), peak_rss_mib(server.process.pid)))
        status = predict(url, full + [png[0]])
        rows.append((f"predict, batch {Limits.max_batch_size + 1} (refused)", status,
                     peak_rss_mib(server.process.pid)))
    finally:
        server.stop()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"{'after':<44}{'status':>8}{'peak RSS MiB':>14}{'vs loaded':>11}")
    for label, status, peak in rows:
        print(f"{label:<44}{status or '':>8}{peak:>14.0f}{peak - rows[0][2]:>+11.0f}")
    print(json.dumps({label: {"status": status, "peak_rss_mib": round(peak)}
                      for label, status, peak in rows}))


if __name__ == "__main__":
    main()
