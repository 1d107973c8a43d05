"""Paths that may be URIs of TensorFlow's filesystems (gs://bucket/path): the
artifacts and the data can live where remote workers reach them.

A local path keeps Python's own file calls (their errors, and no TensorFlow import);
a URI goes through TFX's `fileio` (TensorFlow's filesystems), imported on first use so
that importing this module loads neither."""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
from typing import IO, List

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_uri(path: str) -> bool:
    """Whether `path` names a filesystem by its scheme (gs://, s3://, hdfs://)."""
    return bool(_SCHEME.match(path))


def absolute(path: str) -> str:
    """`path` made absolute when it is local; a URI as it is (os.path.abspath would turn
    gs://bucket/x into <cwd>/gs:/bucket/x)."""
    return path if is_uri(path) else os.path.abspath(path)


def _fileio():
    from tfx.dsl.io import fileio

    return fileio


def exists(path: str) -> bool:
    return _fileio().exists(path) if is_uri(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _fileio().isdir(path) if is_uri(path) else os.path.isdir(path)


def listdir(path: str) -> List[str]:
    """The names in a folder (an object store's folder names lose their trailing /)."""
    if not is_uri(path):
        return os.listdir(path)
    return [name.rstrip("/") for name in _fileio().listdir(path)]


def matching(pattern: str) -> List[str]:
    """The paths a glob pattern matches."""
    return _fileio().glob(pattern) if is_uri(pattern) else glob.glob(pattern)


def open_file(path: str, mode: str = "r") -> IO:
    return _fileio().open(path, mode) if is_uri(path) else open(path, mode)


def read_text(path: str) -> str:
    """The text of a file. Whatever keeps it from being read raises OSError, as open()
    does (TensorFlow's filesystems raise errors of their own)."""
    if not is_uri(path):
        with open(path) as text_file:
            return text_file.read()
    import tensorflow as tf

    try:
        with _fileio().open(path, "r") as text_file:
            return text_file.read()
    except tf.errors.NotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
    except tf.errors.OpError as error:
        raise OSError(f"{path}: {error.message}") from None


def copy_file(source: str, destination: str) -> None:
    """Copies a file between local paths and URIs, replacing `destination`."""
    if is_uri(source) or is_uri(destination):
        _fileio().copy(source, destination, overwrite=True)
    else:
        shutil.copyfile(source, destination)
