"""The checks every request to the embedded server and the proxy passes before its
body is read (serving/http_checks.py), on headers as http.server parses them."""

from __future__ import annotations

import http.client
import io

import pytest

from serving.http_checks import content_length, framing_refusal, origin_form


def _headers(raw: bytes):
    return http.client.parse_headers(io.BytesIO(raw + b"\r\n"))


@pytest.mark.parametrize("raw, status, message", [
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400, "both Transfer-Encoding"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400, "both Transfer-Encoding"),
    (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400, "2 Content-Length headers"),
    (b"Content-Length: 5\r\ncontent-length: 5\r\n", 400, "2 Content-Length headers"),
    (b"Content-Length: 5, 6\r\n", 400, "is not a non-negative integer"),
    (b"Content-Length: +5\r\n", 400, "is not a non-negative integer"),
    (b"Transfer-Encoding: chunked\r\n", 411, "a Content-Length header is required"),
    (b"Transfer-Encoding: gzip, chunked\r\n", 411, "a Content-Length header is required"),
    # A blank before the colon hides the header from http.server's parser; folding hides
    # one inside another's value.
    (b"Content-Length : 5\r\nTransfer-Encoding: chunked\r\n", 400, "header line is malformed"),
    (b"Host: x\r\n Content-Length: 5\r\n", 400, "folded over several lines"),
])
def test_ambiguous_framing_is_refused(raw, status, message):
    refusal = framing_refusal(_headers(raw))
    assert refusal is not None and refusal[0] == status and message in refusal[1], refusal


@pytest.mark.parametrize("raw, length", [(b"", None), (b"Content-Length: 0\r\n", 0),
                                         (b"Content-Length:  42 \r\n", 42),
                                         (b"Host: x\r\nExpect: 100-continue\r\n", None)])
def test_one_length_or_none_passes(raw, length):
    headers = _headers(raw)
    assert framing_refusal(headers) is None
    assert content_length(headers) == length


@pytest.mark.parametrize("target, path", [
    ("/v1/models/cifar10", "/v1/models/cifar10"),
    ("/v1/models/cifar10:predict?x=1", "/v1/models/cifar10:predict?x=1"),
    ("//evil.example/x", "//evil.example/x"),  # a path: the authority is the server's
    ("http://anything:99/v1/models/cifar10?q", "/v1/models/cifar10?q"),
    ("HTTPS://host", "/"),
    # Refused: what, appended to a backend's address, would name another host or port.
    (":18611/secret", None), (".example.org/x", None), ("@127.0.0.1:18601/x", None),
    ("*", None), ("v1/models/cifar10", None), ("ftp://host/x", None), ("http:///x", None),
    ("/a#fragment", None), ("/a\x00b", None), ("/caf\xe9", None), ("", None),
])
def test_only_a_path_or_an_absolute_uri_is_a_target(target, path):
    assert origin_form(target) == path
