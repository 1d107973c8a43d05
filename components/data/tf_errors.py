"""TensorFlow's and the file system's error messages in a user's terms: what went
wrong, without the function-node and op names TensorFlow wraps around it."""

from __future__ import annotations

import re
from typing import Optional

_FUNCTION_NODE = re.compile(r"\{\{[^{}]*\}\}\s*")
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\](\s*name:\s*\S*)?\s*$")


def plain_message(error: BaseException, path: Optional[str] = None) -> str:
    """The first line of `error`'s message without TensorFlow's wrapping (and without
    a leading `<path>; `, which TensorFlow's file system errors start with)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    message = getattr(error, "message", None) or str(error)
    first_line = next((line for line in message.splitlines() if line.strip()), "")
    text = _OP_SUFFIX.sub("", _FUNCTION_NODE.sub("", first_line)).strip()
    if path and text.startswith(f"{path}; "):
        text = text[len(path) + 2:]
    return text or type(error).__name__
