"""Raw bytes to an HTTP port, for the tests of what a server does with requests no
HTTP client library would send."""

from __future__ import annotations

import json
import re
import socket


def _connect(url: str, timeout: float) -> socket.socket:
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def first_answer(url: str, payload: bytes, timeout: float = 15.0):
    """Sends `payload` to the server at `url`; returns (status, JSON body) of the first
    final answer, or (None, None) when the server closed the connection without one.
    Raises socket.timeout on a hang."""
    with _connect(url, timeout) as connection:
        connection.sendall(payload)
        received = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"Content-Length: (\d+)", head)
            if length and len(body) >= int(length[1]):
                break
    # An interim "100 Continue" is not the answer.
    while re.match(rb"HTTP/1\.1 1\d\d ", received):
        received = received.partition(b"\r\n\r\n")[2]
    if not received:
        return None, None
    # The first answer only: pipelined requests in the payload get one answer each.
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    length = re.search(rb"Content-Length: (\d+)", head)
    return status, json.loads(body[:int(length[1])] if length else body)


def answer_statuses(url: str, payload: bytes, timeout: float = 15.0) -> list:
    """The status of every answer the server sends to `payload` until it closes the
    connection or is silent for `timeout` seconds."""
    received = b""
    with _connect(url, timeout) as connection:
        connection.sendall(payload)
        while True:
            try:
                chunk = connection.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            received += chunk
    return [int(status) for status in re.findall(rb"(?:^|\n)HTTP/1\.1 (\d{3}) ", received)]
