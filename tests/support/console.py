"""What a quiet console must not show: library output a user can do nothing about."""

from __future__ import annotations

import re
from typing import Iterable, List

_TENSORFLOW_CPP_LINE = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
_LIBRARY_LINES = re.compile(
    _TENSORFLOW_CPP_LINE
    + r"|^[IWEF]\d{4} [\d:.]+ +\d+ \S+:\d+\] "  # absl's C++ logging (TFDV, TF Serving)
    r"|^WARNING: All log messages before absl::InitializeLog"
    r"|[A-Z][A-Za-z]*Warning: "  # a Python warning (FutureWarning: ...)
    r"|^(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:")  # Python logging's default format


def library_lines(lines: Iterable[str]) -> List[str]:
    """The lines written by TensorFlow, absl, Beam or Python's warnings machinery."""
    return [line for line in lines if _LIBRARY_LINES.search(line)]


def tensorflow_cpp_lines(lines: Iterable[str]) -> List[str]:
    """The lines TensorFlow's C++ logging wrote."""
    return [line for line in lines if re.search(_TENSORFLOW_CPP_LINE, line)]
