"""Sustained load on the embedded server, across a push and a label switch.

`wrk` (a C load generator; Debian package `wrk`) sends REST predict requests, one PNG
each, to `/v1/models/NAME/labels/stable:predict` on loopback over several keep-alive
connections, in three phases of equal length:
- before: version 1 is served and labelled `stable`;
- during: version 2 is pushed (copied in, saved_model.pb last, as the Pusher does; with
  `stable` set, a push is not served until labelled), labelled `canary` (`python -m
  serving label canary 2 --server URL` loads it and waits until it is AVAILABLE), then
  promoted to `stable` (the switch);
- after: `stable` answers from version 2 (checked in the label's metadata).
Each phase is bounded in time (wrk's -d) and in requests (each wrk thread stops sending
after its share; wrk exits at -d). Per phase it reports requests served, non-2xx answers, socket errors
(connect, read, write, timeout) and p50/p99 latency; and the server's resident memory
at the start and after each phase, with the growth allowed from start to end
(`RSS_GROWTH_BOUND_MIB`) and over the last phase (`RSS_STEADY_GROWTH_BOUND_MIB`).

Usage: python benchmarks/load_test.py --model-base-path outputs/serving_model/cifar10
    [--seconds 180] [--connections 8] [--threads 2] [--max-requests 300000]
Without --model-base-path the smoke pipeline runs on synthetic data first to push one.
Exit status 1 when any request failed or memory grew past the bound.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from components.contract import (CANARY_LABEL, DEFAULT_SIGNATURE,  # noqa: E402
                                 STABLE_LABEL, newest_version)
from benchmarks.model_versions import push_version  # noqa: E402
from tests.support.server_process import (EmbeddedServerProcess,  # noqa: E402
                                          server_rss_bytes)

LUA_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load_test.lua")
PHASES = ("before", "during", "after")
# The most the server's RSS may grow from the start of the load to its end: a second
# version loaded beside the first during the switch (the ResNet9's 26 MB of float32
# weights, its graph and kernels' buffers) and allocator slack, but not a per-request
# leak, which over 10^4..10^5 requests would be far larger.
RSS_GROWTH_BOUND_MIB = 256
# The most it may grow over the last phase, once both versions have served: the
# steady state, where any growth is a leak.
RSS_STEADY_GROWTH_BOUND_MIB = 32
# A request slower than this counts as a wrk timeout (a socket error).
REQUEST_TIMEOUT_S = 10


def wrk_path() -> Optional[str]:
    return shutil.which("wrk")


def predict_body(image: bytes) -> bytes:
    """The REST predict request for one encoded image (TF Serving's row format)."""
    return json.dumps({"signature_name": DEFAULT_SIGNATURE,
                       "instances": [{"b64": base64.b64encode(image).decode()}]}).encode()


def set_label(base_path: str, model_name: str, label: str, version: int,
              server_url: Optional[str] = None) -> None:
    """`python -m serving label` over the model base path, as an operator runs it; with
    the server's URL, it returns once the version is loaded there."""
    completed = subprocess.run(
        [sys.executable, "-m", "serving", "label", label, str(version),
         "--model-base-path", base_path, "--model-name", model_name,
         *(("--server", server_url) if server_url else ())],
        capture_output=True, text=True, timeout=300)
    if completed.returncode != 0:
        raise RuntimeError(f"labelling version {version} {label!r} failed: "
                           f"{completed.stdout}{completed.stderr}")


def labelled_version(server_url: str, model_name: str, label: str) -> int:
    """The version a label answers from, in its metadata (TF Serving's REST API)."""
    url = f"{server_url}/v1/models/{model_name}/labels/{label}/metadata"
    with urllib.request.urlopen(url, timeout=30) as response:
        return int(json.loads(response.read())["model_spec"]["version"])


def run_wrk(url: str, path: str, body_file: str, seconds: float, connections: int,
            threads: int, max_requests: int) -> subprocess.Popen:
    per_thread = -(-max_requests // threads)
    return subprocess.Popen(
        [wrk_path(), "-t", str(threads), "-c", str(connections), "-d", f"{seconds:.0f}s",
         "--timeout", f"{REQUEST_TIMEOUT_S}s", "-s", LUA_SCRIPT, url, "--", body_file, path,
         str(per_thread)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(process: subprocess.Popen, seconds: float) -> dict:
    output, _ = process.communicate(timeout=seconds + 60)
    for line in output.splitlines():
        if line.startswith("LOAD_TEST_RESULT "):
            result = json.loads(line[len("LOAD_TEST_RESULT "):])
            result["socket_errors"] = sum(result[key] for key in (
                "connect_errors", "read_errors", "write_errors", "timeouts"))
            return result
    raise RuntimeError(f"wrk exited {process.returncode} without a result:\n{output}")


def run_load_test(version_dir: str, work_dir: str, image: bytes, seconds: float = 180,
                  connections: int = 8, threads: int = 2, max_requests: int = 300_000,
                  model_name: str = "cifar10", report: Callable = print) -> dict:
    """Serves a copy of `version_dir` as version 1 from `work_dir` and runs the three
    phases (`seconds` in all, `max_requests` at most); returns the figures."""
    if wrk_path() is None:
        raise RuntimeError("wrk is not on PATH (Debian: apt-get install wrk)")
    base_path = os.path.join(work_dir, "models", model_name)
    push_version(version_dir, base_path, 1)
    set_label(base_path, model_name, STABLE_LABEL, 1)
    body_file = os.path.join(work_dir, "predict.json")
    with open(body_file, "wb") as body:
        body.write(predict_body(image))
    phase_seconds = seconds / len(PHASES)
    phase_requests = max(1, max_requests // len(PHASES))
    path = f"/v1/models/{model_name}/labels/{STABLE_LABEL}:predict"
    server = EmbeddedServerProcess(base_path, model_name)
    try:
        stable_versions = [labelled_version(server.rest_url, model_name, STABLE_LABEL)]
        rss = {"start": server_rss_bytes(server) / 2**20}
        results, events = {}, {}
        for phase in PHASES:
            wrk = run_wrk(server.rest_url, path, body_file, phase_seconds, connections,
                          threads, phase_requests)
            try:
                if phase == "during":
                    started = time.monotonic()
                    time.sleep(phase_seconds / 6)
                    push_version(version_dir, base_path, 2)
                    events["pushed_at_s"] = time.monotonic() - started
                    set_label(base_path, model_name, CANARY_LABEL, 2, server.rest_url)
                    events["canary_at_s"] = time.monotonic() - started
                    time.sleep(phase_seconds / 6)
                    set_label(base_path, model_name, STABLE_LABEL, 2, server.rest_url)
                    events["promoted_at_s"] = time.monotonic() - started
                    if events["promoted_at_s"] > phase_seconds:
                        raise RuntimeError(f"the switch took {events['promoted_at_s']:.0f} "
                                           f"s, longer than the phase ({phase_seconds:.0f} s)")
                results[phase] = wrk_result(wrk, phase_seconds)
            finally:  # a failed switch must not leave wrk running
                if wrk.poll() is None:
                    wrk.kill()
                    wrk.wait()
            rss[phase] = server_rss_bytes(server) / 2**20
            report(f"{phase}: {results[phase]}, server RSS {rss[phase]:.0f} MiB")
        stable_versions.append(labelled_version(server.rest_url, model_name, STABLE_LABEL))
    finally:
        server.stop()
    return {"phases": results, "switch": events, "stable_version_before_after": stable_versions,
            "rss_mib": rss, "rss_start_mib": rss["start"], "rss_end_mib": rss["after"],
            "rss_growth_bound_mib": RSS_GROWTH_BOUND_MIB,
            "connections": connections, "threads": threads, "seconds": seconds,
            "max_requests": max_requests}


def failures(result: dict) -> list:
    """What went wrong in a run: failed requests and memory growth past the bound."""
    found = []
    for phase, figures in result["phases"].items():
        if figures["non_2xx"]:
            found.append(f"{phase}: {figures['non_2xx']} non-2xx answers (first: "
                         f"{figures['first_bad_status']})")
        if figures["socket_errors"]:
            found.append(f"{phase}: {figures['socket_errors']} socket errors")
        if not figures["requests"]:
            found.append(f"{phase}: no request answered")
    if result["stable_version_before_after"] != [1, 2]:
        found.append(f"{STABLE_LABEL} answered from versions "
                     f"{result['stable_version_before_after']} before and after, not [1, 2]")
    if result["rss_end_mib"] - result["rss_start_mib"] > result["rss_growth_bound_mib"]:
        found.append(f"RSS grew {result['rss_end_mib'] - result['rss_start_mib']:.0f} MiB, "
                     f"over {result['rss_growth_bound_mib']} MiB")
    steady_growth = result["rss_mib"]["after"] - result["rss_mib"]["during"]
    if steady_growth > RSS_STEADY_GROWTH_BOUND_MIB:
        found.append(f"RSS grew {steady_growth:.0f} MiB over the last phase, over "
                     f"{RSS_STEADY_GROWTH_BOUND_MIB} MiB")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-base-path")
    parser.add_argument("--model-name", default="cifar10")
    parser.add_argument("--seconds", type=float, default=180, help="all three phases")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--max-requests", type=int, default=300_000,
                        help="all three phases; each stops at its third")
    args = parser.parse_args()
    if wrk_path() is None:
        sys.exit("error: wrk is not on PATH (Debian: apt-get install wrk; `make test` "
                 "installs it)")

    from benchmarks.model_versions import push_a_model
    from tests.support.data import png_images

    base_path = args.model_base_path or push_a_model()[0]
    version_dir = newest_version(base_path)
    if version_dir is None:
        sys.exit(f"error: --model-base-path {base_path}: no version with a saved_model.pb")
    with tempfile.TemporaryDirectory(prefix="load-test-") as work_dir:
        result = run_load_test(version_dir, work_dir, png_images(1)[0], args.seconds,
                               args.connections, args.threads, args.max_requests,
                               args.model_name)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"{args.connections} connections on {args.threads} wrk threads, "
          f"{args.seconds:.0f} s, batch 1 REST predict on label {STABLE_LABEL}")
    print(f"{'phase':<8}{'requests':>10}{'req/s':>8}{'non-2xx':>9}{'socket err':>12}"
          f"{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for phase, row in result["phases"].items():
        print(f"{phase:<8}{row['requests']:>10}{row['requests'] / row['duration_us'] * 1e6:>8.1f}"
              f"{row['non_2xx']:>9}{row['socket_errors']:>12}{row['p50_us'] / 1000:>9.2f}"
              f"{row['p99_us'] / 1000:>9.2f}{row['max_us'] / 1000:>9.2f}")
    switch = result["switch"]
    print(f"Switch (seconds into 'during'): pushed {switch['pushed_at_s']:.1f}, loaded and "
          f"{CANARY_LABEL} {switch['canary_at_s']:.1f}, promoted to {STABLE_LABEL} "
          f"{switch['promoted_at_s']:.1f}; {STABLE_LABEL} answered from versions "
          f"{result['stable_version_before_after']} before and after")
    print("Server RSS MiB: " + ", ".join(f"{name} {mib:.0f}" for name, mib in
                                         result["rss_mib"].items())
          + f" (end - start {result['rss_end_mib'] - result['rss_start_mib']:+.0f}, bound "
          f"+{RSS_GROWTH_BOUND_MIB}; over the last phase "
          f"{result['rss_mib']['after'] - result['rss_mib']['during']:+.0f}, bound "
          f"+{RSS_STEADY_GROWTH_BOUND_MIB})")
    print(json.dumps(result))
    problems = failures(result)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
