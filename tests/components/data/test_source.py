"""Locating data, and the download path against an HTTP server on 127.0.0.1."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import random
import tarfile
import tempfile
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.contract import TEST_SPLIT, TRAIN_SPLIT
from components.data import cifar10_format, source as data_source
from components.data.cifar10_format import Cifar10DataError
from components.data.source import ArchiveError, ChecksumError, DownloadError
from tests.support.data import write_small_dataset
from tests.support.fuzz import FUZZ, mutated


def _tarball(root: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for entry in sorted(os.listdir(root)):
            archive.add(os.path.join(root, entry), arcname=entry)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive_bytes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("archive-src"))
    write_small_dataset(root, cifar10_format.PYTHON_LAYOUT, train_sizes=(8, 8), test_size=4)
    return _tarball(root)


class _ArchiveServer:
    """Serves one payload on 127.0.0.1; `declared_length` may lie, as a cut-off
    connection does."""

    def __init__(self, payload: bytes, declared_length=None):
        self.payload = payload
        self.declared_length = declared_length or len(payload)
        self.requests = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/gzip")
                self.send_header("Content-Length", str(server.declared_length))
                self.end_headers()
                self.wfile.write(server.payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/cifar-10-python.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(payload, declared_length=None):
        servers.append(_ArchiveServer(payload, declared_length))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _cache_entries(cache_dir) -> list:
    return sorted(os.listdir(cache_dir)) if os.path.isdir(cache_dir) else []


def test_download_verifies_extracts_and_reuses_the_cache(tmp_path, serve, archive_bytes):
    server = serve(archive_bytes)
    cache_dir = str(tmp_path / "cache")
    md5 = hashlib.md5(archive_bytes).hexdigest()

    source = data_source.resolve(None, cache_dir, download_url=server.url, download_md5=md5)

    assert source.layout == cifar10_format.PYTHON_LAYOUT
    assert data_source.validate(source) == {TRAIN_SPLIT: 16, TEST_SPLIT: 4}
    assert not [name for name in _cache_entries(cache_dir) if name.startswith(".")]
    again = data_source.resolve(None, cache_dir, download_url=server.url, download_md5=md5)
    assert again == source
    assert server.requests == 1


def test_checksum_mismatch_keeps_nothing(tmp_path, serve, archive_bytes):
    server = serve(archive_bytes)
    cache_dir = str(tmp_path / "cache")
    with pytest.raises(ChecksumError) as error:
        data_source.resolve(None, cache_dir, download_url=server.url, download_md5="0" * 32)
    assert server.url in str(error.value) and "MD5 mismatch" in str(error.value)
    assert _cache_entries(cache_dir) == []


def test_cut_off_download_keeps_nothing(tmp_path, serve, archive_bytes):
    server = serve(archive_bytes[:1000], declared_length=len(archive_bytes))
    cache_dir = str(tmp_path / "cache")
    with pytest.raises(DownloadError) as error:
        data_source.resolve(None, cache_dir, download_url=server.url,
                               download_md5=hashlib.md5(archive_bytes).hexdigest())
    assert server.url in str(error.value)
    assert _cache_entries(cache_dir) == []


def test_truncated_archive_is_named_and_nothing_is_extracted(tmp_path, serve, archive_bytes):
    truncated = archive_bytes[: len(archive_bytes) // 2]
    server = serve(truncated)
    cache_dir = str(tmp_path / "cache")
    with pytest.raises(ArchiveError, match="archive is truncated or corrupt"):
        data_source.resolve(None, cache_dir, download_url=server.url,
                               download_md5=hashlib.md5(truncated).hexdigest())
    # The verified download stays (it is what the server sent); no extraction does.
    assert _cache_entries(cache_dir) == ["cifar-10-python.tar.gz"]


def test_local_tarball_is_extracted_into_the_cache(tmp_path, archive_bytes):
    tarball = tmp_path / "cifar-10-python.tar.gz"
    tarball.write_bytes(archive_bytes)
    source = data_source.resolve(str(tarball), str(tmp_path / "cache"))
    assert source.input_base.startswith(str(tmp_path / "cache"))
    assert data_source.validate(source, limit=3) == {TRAIN_SPLIT: 6, TEST_SPLIT: 3}


def test_tarball_without_cifar_inside_is_refused(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "readme.txt").write_text("hello")
    tarball = tmp_path / "other.tar.gz"
    tarball.write_bytes(_tarball(str(other)))
    with pytest.raises(ArchiveError, match="not a CIFAR-10 archive"):
        data_source.resolve(str(tarball), str(tmp_path / "cache"))
    assert not [n for n in os.listdir(tmp_path / "cache") if n.startswith((".", "extracted"))]


def test_locate_accepts_parent_layout_dir_and_files(tmp_path):
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.BINARY_LAYOUT)
    from_parent = data_source.locate(root)
    assert (from_parent.layout, from_parent.train_pattern, from_parent.test_pattern) == (
        "binary", "cifar-10-batches-bin/data_batch_*.bin", "cifar-10-batches-bin/test_batch.bin")
    from_layout_dir = data_source.locate(os.path.join(root, "cifar-10-batches-bin"))
    assert from_layout_dir.train_pattern == "data_batch_*.bin"
    assert data_source.validate(from_parent) == data_source.validate(from_layout_dir)


def test_locate_prefers_the_configured_layout_when_both_exist(two_layout_root):
    assert data_source.locate(two_layout_root, "binary").layout == "binary"
    assert data_source.locate(two_layout_root, "python").layout == "python"


def test_spans_become_a_span_pattern(tmp_path):
    root = tmp_path / "spans"
    for span in (0, 1):
        write_small_dataset(str(root / f"span-{span}"), cifar10_format.PYTHON_LAYOUT, seed=span)
    (root / "notes").mkdir()
    source = data_source.locate(str(root))
    assert source.spans == (0, 1)
    assert source.train_pattern == "span-{SPAN}/cifar-10-batches-py/data_batch_*"
    assert source.test_pattern == "span-{SPAN}/cifar-10-batches-py/test_batch"


@pytest.mark.parametrize("make, problem", [
    (lambda root: None, "no such file or directory"),
    (lambda root: (root.mkdir(), (root / "x.csv").write_text("1,2")), "wrong layout"),
    (lambda root: (root.parent.mkdir(exist_ok=True), root.write_text("x")),
     "not a directory or a .tar.gz archive"),
])
def test_bad_paths_are_named(tmp_path, make, problem):
    root = tmp_path / "input"
    make(root)
    with pytest.raises(Cifar10DataError) as error:
        data_source.resolve(str(root), str(tmp_path / "cache"))
    assert str(root) in str(error.value) and problem in str(error.value)


def test_validate_names_a_missing_test_batch(tmp_path):
    root = str(tmp_path / "data")
    write_small_dataset(root, cifar10_format.PYTHON_LAYOUT)
    os.unlink(os.path.join(root, "cifar-10-batches-py", "test_batch"))
    with pytest.raises(Cifar10DataError, match="test_batch: no test batch files found"):
        data_source.validate(data_source.locate(root))


@pytest.fixture(scope="module")
def plain_tar_bytes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("archive-plain"))
    write_small_dataset(root, cifar10_format.BINARY_LAYOUT, train_sizes=(2,), test_size=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(root, arcname=".")
    return buffer.getvalue()


def _extract_or_refuse(tmp_dir: str, name: str, content: bytes) -> None:
    """Extraction either yields CIFAR-10 data (valid or refused by name) or fails with
    ArchiveError, and leaves no half-extracted directory behind."""
    tarball = os.path.join(tmp_dir, name)
    with open(tarball, "wb") as archive_file:
        archive_file.write(content)
    cache_dir = os.path.join(tmp_dir, "cache")
    try:
        source = data_source.resolve(tarball, cache_dir)
        data_source.validate(source)
    except Cifar10DataError:
        pass
    assert not [entry for entry in os.listdir(cache_dir) if entry.startswith(".")], \
        "a staging directory was left behind"


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_tarballs_extract_or_fail_by_name(archive_bytes, plain_tar_bytes, data):
    with tempfile.TemporaryDirectory() as tmp_dir:
        _extract_or_refuse(tmp_dir, "cifar-10-python.tar.gz",
                           data.draw(mutated(archive_bytes)))
    with tempfile.TemporaryDirectory() as tmp_dir:
        _extract_or_refuse(tmp_dir, "cifar-10-binary.tar", data.draw(mutated(plain_tar_bytes)))


def test_an_archive_that_expands_past_the_limit_is_refused(tmp_path, monkeypatch):
    """A small archive declaring more bytes than any CIFAR-10 archive holds (a
    decompression bomb) is refused before its members are written."""
    big = tmp_path / "big"
    big.mkdir()
    (big / "cifar-10-batches-py").mkdir()
    (big / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\0" * 4096)
    tarball = tmp_path / "bomb.tar.gz"
    tarball.write_bytes(_tarball(str(big)))
    monkeypatch.setattr(data_source, "MAX_EXTRACTED_BYTES", 1024)
    with pytest.raises(ArchiveError, match="expands to more than 1024 bytes"):
        data_source.resolve(str(tarball), str(tmp_path / "cache"))
    assert not [n for n in os.listdir(tmp_path / "cache") if n.startswith((".", "extracted"))]


def test_a_corrupt_deflate_stream_is_refused_by_name(tmp_path):
    """Kept from the fuzzer: a gzip stream whose deflate data breaks after the first
    members raised zlib.error mid-extraction, which the extractor did not name."""
    rng = random.Random(0)
    content = bytes(rng.randrange(16) for _ in range(20000))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        directory = tarfile.TarInfo("cifar-10-batches-py")
        directory.type, directory.mtime = tarfile.DIRTYPE, 0
        archive.addfile(directory)
        batch = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        batch.size, batch.mtime = len(content), 0
        archive.addfile(batch, io.BytesIO(content))
    corrupt = bytearray(gzip.compress(buffer.getvalue(), mtime=0))
    corrupt[4600] ^= 0xFF  # "invalid distance too far back", deep in the stream
    tarball = tmp_path / "cifar-10-python.tar.gz"
    tarball.write_bytes(bytes(corrupt))
    with pytest.raises(ArchiveError, match="archive is truncated or corrupt"):
        data_source.resolve(str(tarball), str(tmp_path / "cache"))
    assert not [n for n in os.listdir(tmp_path / "cache") if n.startswith((".", "extracted"))]
