"""Finding CIFAR-10 on disk, or fetching the official archive, before ExampleGen runs.

A data source is one of:
- a directory holding `cifar-10-batches-py/` and/or `cifar-10-batches-bin/`;
- one of those layout directories itself;
- a directory of spans, `span-0/`, `span-1/`, ... each holding a layout directory
  (new labelled data arrives as a new span; ExampleGen's `{SPAN}` pattern picks it up);
- an official tarball (`cifar-10-python.tar.gz` or `cifar-10-binary.tar.gz`), extracted
  into the cache;
- nothing: the official archive is downloaded into the cache and its MD5 verified.

Downloads and extractions are atomic: they happen under a temporary name in the cache
and are renamed into place only once complete and verified, so an interrupted or
corrupt fetch never leaves anything that looks like valid data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from typing import Optional

from components import console, uris
from components.contract import TEST_SPLIT, TRAIN_SPLIT
from components.data import cifar10_format
from components.data.cifar10_format import LAYOUTS, Cifar10DataError, Layout


@dataclasses.dataclass(frozen=True)
class OfficialArchive:
    url: str
    md5: str
    layout: str


OFFICIAL_ARCHIVES = {
    cifar10_format.PYTHON_LAYOUT: OfficialArchive(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a", cifar10_format.PYTHON_LAYOUT),
    cifar10_format.BINARY_LAYOUT: OfficialArchive(
        "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
        "c32a1d4ab5d03f1284b67883e8d87530", cifar10_format.BINARY_LAYOUT),
}

SPAN_DIR_PATTERN = re.compile(r"^span-(\d+)$")
SPAN_DIR_TEMPLATE = "span-{SPAN}"
DEFAULT_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "cifar10-tfx")
# The official archives extract to about 180 MB; anything far larger is not CIFAR-10
# (a decompression bomb would fill the disk).
MAX_EXTRACTED_BYTES = 1 << 30
# The official archives hold 8 files (tarfile keeps every member's header in memory).
MAX_ARCHIVE_MEMBERS = 1000


class DownloadError(Cifar10DataError):
    """The archive could not be fetched completely."""


class ChecksumError(Cifar10DataError):
    """The fetched archive's MD5 is not the expected one."""


class ArchiveError(Cifar10DataError):
    """The archive is truncated, corrupt, or not a CIFAR-10 archive."""


@dataclasses.dataclass(frozen=True)
class DataSource:
    """What ExampleGen reads: `input_base` plus split patterns relative to it."""

    input_base: str
    layout: str
    train_pattern: str
    test_pattern: str
    spans: tuple  # span numbers found; () when the data is not organised in spans

    def split_patterns(self) -> dict:
        return {TRAIN_SPLIT: self.train_pattern, TEST_SPLIT: self.test_pattern}


def md5_of_file(path: str, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as archive_file:
        for chunk in iter(lambda: archive_file.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_archive(url: str, expected_md5: str, cache_dir: str,
                     timeout_s: float = 60.0) -> str:
    """Fetches `url` into `cache_dir` unless a verified copy is there; returns its path.

    The bytes go to a temporary file that is renamed to the archive's name only when
    the length and MD5 are right; on any failure the temporary file is removed.
    """
    os.makedirs(cache_dir, exist_ok=True)
    archive_path = os.path.join(cache_dir, os.path.basename(url.split("?")[0]))
    if os.path.exists(archive_path) and md5_of_file(archive_path) == expected_md5:
        console.report(f"Using the cached {archive_path}")
        return archive_path
    partial = tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".download-",
                                          suffix=".part", delete=False)
    try:
        digest = hashlib.md5()
        received = 0
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, partial:
                length = response.headers.get("Content-Length")
                expected_bytes = int(length) if length else None
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    partial.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    console.transfer(f"Downloading {url}", received, expected_bytes,
                                      started)
            console.transfer(f"Downloaded {url}", received, expected_bytes, started,
                              finished=True)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            raise DownloadError(f"{url}: download failed after {received} bytes: "
                                f"{error}") from None
        if expected_bytes is not None and received != expected_bytes:
            raise DownloadError(f"{url}: truncated download: got {received} of "
                                f"{expected_bytes} bytes")
        actual_md5 = digest.hexdigest()
        if actual_md5 != expected_md5:
            raise ChecksumError(f"{url}: MD5 mismatch: expected {expected_md5}, got "
                                f"{actual_md5} ({received} bytes); nothing was kept")
        os.replace(partial.name, archive_path)
        return archive_path
    finally:
        if os.path.exists(partial.name):
            os.unlink(partial.name)


def _safe_members(archive: tarfile.TarFile, archive_path: str):
    """The members to extract: plain files and directories inside the target, and no
    more bytes in all than MAX_EXTRACTED_BYTES (checked from the headers, before a
    member is written)."""
    total_bytes = members = 0
    for member in archive:
        name = os.path.normpath(member.name)
        if name.startswith(("/", "..")) or not (member.isfile() or member.isdir()):
            raise ArchiveError(f"{archive_path}: refusing unsafe archive member "
                               f"{member.name!r}")
        members += 1
        if members > MAX_ARCHIVE_MEMBERS:
            raise ArchiveError(f"{archive_path}: holds more than {MAX_ARCHIVE_MEMBERS} "
                               f"members, far more than any CIFAR-10 archive; refusing it")
        total_bytes += max(member.size, 0)
        if total_bytes > MAX_EXTRACTED_BYTES:
            raise ArchiveError(f"{archive_path}: expands to more than {MAX_EXTRACTED_BYTES} "
                               f"bytes, more than any CIFAR-10 archive; refusing it")
        yield member


def extract_archive(archive_path: str, cache_dir: str) -> str:
    """Extracts a CIFAR-10 tarball into the cache; returns the directory holding its layout.

    Extraction goes to a temporary directory that is renamed into place only when
    every member was read and a layout directory is present.
    """
    if not os.path.isfile(archive_path):
        raise ArchiveError(f"{archive_path}: no such archive")
    os.makedirs(cache_dir, exist_ok=True)
    target = os.path.join(cache_dir, f"extracted-{md5_of_file(archive_path)[:16]}")
    if os.path.isdir(target):
        return target
    staging = tempfile.mkdtemp(dir=cache_dir, prefix=".extract-")
    try:
        try:
            with tarfile.open(archive_path, "r:*") as archive:
                archive.extractall(staging, members=_safe_members(archive, archive_path))
        # zlib.error and LZMAError are what a corrupt compressed stream raises mid-way.
        except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error,
                lzma.LZMAError) as error:
            raise ArchiveError(f"{archive_path}: archive is truncated or corrupt "
                               f"({type(error).__name__}: {error})") from None
        if not any(os.path.isdir(os.path.join(staging, layout.directory))
                   for layout in LAYOUTS.values()):
            raise ArchiveError(f"{archive_path}: not a CIFAR-10 archive (no "
                               f"{' or '.join(l.directory for l in LAYOUTS.values())} "
                               f"inside)")
        os.replace(staging, target)
        return target
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)


def _layouts_in(directory: str) -> list:
    """Layouts present as subdirectories of `directory`, preferred first."""
    return [layout for layout in LAYOUTS.values()
            if uris.isdir(os.path.join(directory, layout.directory))]


def _layout_of_layout_dir(directory: str) -> Optional[Layout]:
    """The layout a directory holds its batches in directly, if it is a layout dir."""
    for layout in LAYOUTS.values():
        if os.path.basename(os.path.normpath(directory)) == layout.directory:
            return layout
    for layout in (LAYOUTS[cifar10_format.BINARY_LAYOUT], LAYOUTS[cifar10_format.PYTHON_LAYOUT]):
        if uris.matching(os.path.join(directory, layout.train_pattern)):
            return layout
    return None


def _pick_layout(directory: str, preferred: Optional[str]) -> Optional[Layout]:
    present = _layouts_in(directory)
    if not present:
        return None
    for layout in present:
        if layout.name == preferred:
            return layout
    return present[0]


def _find_spans(directory: str) -> list:
    spans = []
    for entry in uris.listdir(directory):
        match = SPAN_DIR_PATTERN.match(entry)
        if match and uris.isdir(os.path.join(directory, entry)):
            spans.append((int(match.group(1)), entry))
    return sorted(spans)


def locate(directory: str, preferred_layout: Optional[str] = None) -> DataSource:
    """Describes the CIFAR-10 data under `directory` (a local path or a URI that
    TensorFlow's filesystems read) as ExampleGen input."""
    if not uris.exists(directory):
        raise Cifar10DataError(f"{directory}: no such file or directory")
    if not uris.isdir(directory):
        raise Cifar10DataError(f"{directory}: not a directory or a .tar.gz archive")
    directory = uris.absolute(directory)
    spans = _find_spans(directory)
    if spans:
        layouts = {}
        for span, entry in spans:
            layout = _pick_layout(os.path.join(directory, entry), preferred_layout)
            if layout is None:
                raise Cifar10DataError(
                    f"{os.path.join(directory, entry)}: span holds no "
                    f"cifar-10-batches-py/ or cifar-10-batches-bin/ directory")
            layouts[span] = layout
        if len({layout.name for layout in layouts.values()}) > 1:
            raise Cifar10DataError(
                f"{directory}: spans mix layouts ({ {s: l.name for s, l in layouts.items()} }); "
                f"every span must use the same one")
        layout = layouts[spans[-1][0]]
        prefix = f"{SPAN_DIR_TEMPLATE}/{layout.directory}/"
        return DataSource(directory, layout.name, prefix + layout.train_pattern,
                          prefix + layout.test_file, tuple(span for span, _ in spans))
    layout = _pick_layout(directory, preferred_layout)
    if layout is not None:
        prefix = f"{layout.directory}/"
    else:
        layout = _layout_of_layout_dir(directory)
        prefix = ""
    if layout is None:
        raise Cifar10DataError(
            f"{directory}: wrong layout: expected cifar-10-batches-py/ (data_batch_1..5, "
            f"test_batch), cifar-10-batches-bin/ (data_batch_1..5.bin, test_batch.bin), "
            f"the batch files themselves, or span-N/ directories")
    return DataSource(directory, layout.name, prefix + layout.train_pattern,
                      prefix + layout.test_file, ())


def remote(data_root: str, layout_name: str, in_spans: bool) -> DataSource:
    """A data root this machine cannot list (gs://, s3://): the patterns ExampleGen
    will glob on the cluster, from the layout alone."""
    if layout_name not in LAYOUTS:
        raise Cifar10DataError(f"{layout_name!r}: unknown layout (known: "
                               f"{', '.join(LAYOUTS)})")
    layout = LAYOUTS[layout_name]
    prefix = f"{SPAN_DIR_TEMPLATE}/{layout.directory}/" if in_spans else f"{layout.directory}/"
    # The span numbers are found when the run starts; () marks only that there is no
    # local listing, so `spans` says nothing about whether the data is spanned.
    return DataSource(data_root, layout.name, prefix + layout.train_pattern,
                      prefix + layout.test_file, ())


def resolve(data_path: Optional[str], cache_dir: str = DEFAULT_CACHE_DIR,
            preferred_layout: str = cifar10_format.PYTHON_LAYOUT,
            download_url: Optional[str] = None, download_md5: Optional[str] = None) -> DataSource:
    """Turns a data path, a tarball, or nothing (download) into a `DataSource`."""
    if data_path is None:
        official = OFFICIAL_ARCHIVES[preferred_layout]
        archive_path = download_archive(download_url or official.url,
                                        download_md5 or official.md5, cache_dir)
        return locate(extract_archive(archive_path, cache_dir), preferred_layout)
    if data_path.endswith((".tar.gz", ".tgz", ".tar")):
        if uris.is_uri(data_path):
            raise Cifar10DataError(f"{data_path}: an archive is extracted on this machine; "
                                   f"give a local archive, or the extracted folder's URI")
        if os.path.isfile(data_path):
            return locate(extract_archive(data_path, cache_dir), preferred_layout)
    return locate(data_path, preferred_layout)


def matching_files(source: DataSource, pattern: str) -> list:
    """Files a split pattern matches, across every span for span patterns."""
    return sorted(uris.matching(os.path.join(source.input_base,
                                             pattern.replace("{SPAN}", "*"))))


def validate(source: DataSource, limit: Optional[int] = None) -> dict:
    """Reads every file ExampleGen will read, so bad data fails before the pipeline.

    Returns the number of images per split. Raises `Cifar10DataError` naming the first
    bad file.
    """
    counts = {}
    for split, pattern in source.split_patterns().items():
        files = matching_files(source, pattern)
        if not files:
            raise Cifar10DataError(
                f"{os.path.join(source.input_base, pattern)}: no {split} batch files found")
        counts[split] = sum(len(cifar10_format.read_batch(path, limit,
                                                          opener=uris.open_file))
                            for path in files)
    return counts
