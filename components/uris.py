"""Paths that may be URIs of TensorFlow's and Beam's filesystems (gs://bucket/path):
the artifact root and the data location can live where remote workers reach them."""

from __future__ import annotations

import errno
import os
import re

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_uri(path: str) -> bool:
    """Whether `path` names a filesystem by its scheme (gs://, s3://, hdfs://)."""
    return bool(_SCHEME.match(path))


def absolute(path: str) -> str:
    """`path` made absolute when it is local; a URI as it is (os.path.abspath would turn
    gs://bucket/x into <cwd>/gs:/bucket/x)."""
    return path if is_uri(path) else os.path.abspath(path)


def exists(path: str) -> bool:
    """Whether a file or folder is at `path`, local or a URI."""
    from tfx.dsl.io import fileio  # TensorFlow's filesystems: imported on first use

    return fileio.exists(path)


def read_text(path: str) -> str:
    """The text of a file, local or a URI; a missing one raises FileNotFoundError, as
    open() does (TensorFlow's filesystems raise their own NotFoundError)."""
    from tfx.dsl.io import fileio

    if not fileio.exists(path) or fileio.isdir(path):
        raise FileNotFoundError(errno.ENOENT, "no such file", path)
    with fileio.open(path, "r") as text_file:
        return text_file.read()


def copy_file(source: str, destination: str) -> None:
    """Copies a file between local paths and URIs, replacing `destination`."""
    from tfx.dsl.io import fileio

    fileio.copy(source, destination, overwrite=True)
