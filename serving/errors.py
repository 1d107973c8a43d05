"""Request errors with TF Serving's status codes, mapped to HTTP and gRPC."""

from __future__ import annotations

import re
from typing import Optional

import grpc

# TF Serving answers a REST error with the HTTP status of its canonical code.
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "NOT_FOUND": 404,
    "DEADLINE_EXCEEDED": 504,
    "RESOURCE_EXHAUSTED": 413,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "INTERNAL": 500,
}


class ServingError(Exception):
    """A request the server answers with an error; the server itself is fine."""

    def __init__(self, code: str, message: str, http_status: Optional[int] = None):
        """`http_status`: where HTTP has a closer status than the code's (502 for a
        backend's broken answer, which gRPC calls UNAVAILABLE too)."""
        if code not in _HTTP_STATUS:
            raise ValueError(f"unknown status code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self._http_status = http_status

    @property
    def http_status(self) -> int:
        return self._http_status or _HTTP_STATUS[self.code]

    @property
    def grpc_status(self) -> grpc.StatusCode:
        return getattr(grpc.StatusCode, self.code)


def invalid(message: str) -> ServingError:
    return ServingError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServingError:
    return ServingError("NOT_FOUND", message)


def root_cause(message: str) -> str:
    """The line of a TensorFlow error that says what was wrong, without the graph
    execution preamble and node names (eager calls and TF1 `Session.run` alike)."""
    lines = [line.strip() for line in message.splitlines()
             if line.strip() and not line[0].isspace()
             and not line.startswith(("Graph execution error", "Detected at node", "<stack"))]
    return re.sub(r"\s*\[Op:[^]]*\]$", "", lines[-1]) if lines else message.strip()
