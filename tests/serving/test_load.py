"""Sustained load, short: benchmarks/load_test.py's three wrk phases (tens of seconds in
all) against the embedded server while a new version is pushed and `stable` is moved
onto it. No request may fail: every answer 2xx, no socket error, in every phase."""

from __future__ import annotations

import shutil

import pytest

from benchmarks.load_test import failures, run_load_test
from tests.support.data import png_images

pytestmark = pytest.mark.slow  # a server process under load


@pytest.fixture(autouse=True)
def _wrk_installed():
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (Debian package wrk; `make test` installs it)")


def test_no_request_fails_across_a_push_and_a_label_switch(pushed_model, tmp_path):
    result = run_load_test(pushed_model[2], str(tmp_path), png_images(1)[0], seconds=36,
                           connections=4, threads=2, max_requests=30_000)
    assert failures(result) == []
    assert [phase for phase, figures in result["phases"].items() if figures["requests"]] == \
        ["before", "during", "after"]
