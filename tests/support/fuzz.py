"""Shared pieces of the fuzz tests: byte-level mutations of a valid input, and the
bounds every fuzz test runs under (examples per target, no per-example deadline).

Fuzz tests are derandomised, so CI tries the same inputs every run; the long run
(`benchmarks/fuzz.py`) draws fresh ones for minutes per target. An input that ever
crashed a target is kept as an `@example` next to its test."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Examples per target in the test suite; the long run raises it with FUZZ_EXAMPLES.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@st.composite
def mutated(draw, original: bytes, max_edits: int = 4) -> bytes:
    """`original` with a few edits: bytes overwritten, runs deleted or inserted, the
    end cut off, or everything replaced by noise."""
    data = bytearray(original)
    if draw(st.integers(0, 20)) == 0:
        return draw(st.binary(max_size=512))
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(["overwrite", "delete", "insert", "truncate"]))
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "overwrite" and data:
            data[position] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[position:position + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "truncate":
            del data[position:]
    return bytes(data)
