"""The long fuzz run: every fuzz test of the suite with many more inputs per target and
fresh random ones (the suite's own runs are short and derandomised).

Usage: python benchmarks/fuzz.py [--examples N] [-k EXPR]
Targets (tests named `test_fuzz_*`): the CIFAR-10 readers on mutated real batch files
and odd labels, the tar extractor on mutated archives, the exported graph's image
header check, the REST dispatcher in-process, raw requests over a real socket to the
server and to the logging proxy, and the gRPC servicer. Prints, per target, the inputs tried and the outcome; a failing input
is printed by hypothesis, to be kept as an @example beside its test.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="inputs per target")
    parser.add_argument("-k", dest="select", default="fuzz", help="pytest -k expression")
    args = parser.parse_args()
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:logging", "-q",
         "-k", args.select, "--hypothesis-show-statistics", "-W", "ignore", "--tb=short"],
        cwd=REPO_ROOT, env={**os.environ, "FUZZ_EXAMPLES": str(args.examples)},
        capture_output=True, text=True)
    output = result.stdout + result.stderr
    # Failures (with hypothesis's falsifying input), then its statistics.
    failures = output.find("= FAILURES =")
    statistics = output.find("Hypothesis Statistics")
    if failures >= 0:
        print(output[failures:statistics if statistics > failures else None][-20000:])
    print(output[statistics:] if statistics >= 0 else output[-5000:])
    print("Per target:")
    for target, block in re.findall(r"(tests/\S+::test_fuzz_\S+):\n(.*?)(?=\n\S|\Z)", output,
                                    re.S):
        counts = re.search(r"(\d+) passing, (\d+) failing, and (\d+) invalid", block)
        passing, failing, invalid = counts.groups() if counts else ("?", "?", "?")
        print(f"  {target.split('::')[1]}: {passing} passing, {failing} failing, {invalid} "
              f"invalid (rejected by the strategy) inputs")
    print(f"Whole run: {time.monotonic() - started:.0f} s, pytest exit status "
          f"{result.returncode}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
