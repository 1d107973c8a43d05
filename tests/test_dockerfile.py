"""The container image definition (Dockerfile), checked without a Docker daemon: it
installs exactly the lock, for the Python the lock was resolved for; its Beam worker
target takes `boot` from Beam's SDK image of the locked Beam version; what it copies
exists."""

from __future__ import annotations

import os
import re

from tests.support.data import REPO_ROOT


def _read(name: str) -> str:
    with open(os.path.join(REPO_ROOT, name)) as text:
        return text.read()


def _locked_version(package: str) -> str:
    return re.search(rf'\[\[package\]\]\nname = "{package}"\nversion = "([^"]+)"',
                     _read("uv.lock"))[1]


def test_the_image_installs_the_lock_for_its_python():
    dockerfile = _read("Dockerfile")
    python = re.search(r"ARG PYTHON_IMAGE=python:(\d+\.\d+)-", dockerfile)[1]
    assert python == _read(".python-version").strip()[:len(python)]
    assert f">={python}" in re.search(r'requires-python = "([^"]+)"', _read("pyproject.toml"))[1]
    syncs = re.findall(r"^RUN uv sync (.*)$", dockerfile, re.M)
    assert syncs and all("--frozen" in sync and "--no-dev" in sync for sync in syncs)
    assert "--no-editable" in syncs[-1]


def test_the_beam_worker_target_boots_with_beam_s_own_boot_of_the_locked_version():
    dockerfile = _read("Dockerfile")
    beam = _locked_version("apache-beam")
    python = re.search(r"ARG PYTHON_IMAGE=python:(\d+\.\d+)-", dockerfile)[1]
    assert f"ARG BEAM_SDK_IMAGE=apache/beam_python{python}_sdk:{beam}" in dockerfile
    worker = dockerfile.split("AS beam-worker", 1)[1]
    assert "COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam" in worker
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in worker
    assert re.search(r"^FROM base AS pipeline$", dockerfile, re.M)


def test_what_the_image_copies_exists_and_holds_the_packaged_code():
    dockerfile = _read("Dockerfile")
    sources = [source for line in re.findall(r"^COPY (?!--from)(.*)$", dockerfile, re.M)
               for source in line.split()[:-1]]
    assert sources and all(os.path.exists(os.path.join(REPO_ROOT, source))
                           for source in sources), sources
    packaged = re.search(r'include = \[([^\]]+)\]', _read("pyproject.toml"))[1]
    for package in re.findall(r'"(\w+)\*"', packaged):
        assert package in sources, f"the image does not copy {package}/"
