"""The logging proxy (serving/proxy.py) under hostile clients and faulty backends: it
sends requests only to its backend, by path and query; it refuses what could smuggle a
request; one deadline and one size limit bound a backend's answer, whose breakage
becomes a JSON 502 or 504; logging asks the backend nothing on a request's path.

The proxy runs in this process on loopback, as `python -m serving proxy` builds it
(the request log tests run that command in front of the real embedded server). The
backends here are loopback HTTP servers that misbehave on purpose."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from serving import request_log
from serving.limits import Limits
from serving.proxy import LoggingProxy
from serving.http_transport import serve_http
from tests.support.fuzz import FUZZ
from tests.support.raw_http import answer_statuses, first_answer

TIMEOUT_S = 2.0
MAX_ANSWER = 64 * 1024
LIMITS = Limits(read_timeout_s=1.0, max_connections=8)
PREDICT_ANSWER = {"predictions": [{"class_ids": 3}]}


class _Backend(BaseHTTPRequestHandler):
    """Answers by path: a predict at once, its metadata when `metadata_ok` is set (else
    it hangs), and the faults the proxy must survive."""

    protocol_version = "HTTP/1.1"
    received: list  # (method, path), set per server
    metadata_ok: threading.Event

    def _send(self, status: int, body: bytes, length=None, close=False):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self.received.append(("GET", self.path))
        if self.path.endswith("/metadata"):
            if not self.metadata_ok.wait(30):
                return
            signature = {"inputs": {"images": {"dtype": "DT_STRING"}},
                         "outputs": {"class_ids": {"dtype": "DT_INT64"}}}
            self._send(200, json.dumps({
                "model_spec": {"name": "cifar10", "version": "7"},
                "metadata": {"signature_def": {"signature_def": {
                    "serving_default": signature}}}}).encode())
        elif self.path == "/trickle":  # a byte every 0.3 s: each read is quick
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:  # the proxy gave up, as it should
                self.close_connection = True
        elif self.path == "/cut":  # 17 of 1,000 announced bytes, then closed
            self._send(200, b'{"predictions": [', length=1000, close=True)
            self.close_connection = True
        elif self.path == "/huge":  # announced over the limit
            self._send(200, b"", length=300 * 2**20, close=True)
        elif self.path == "/huge-unannounced":  # no length: read until closed
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"[" + b" " * (2 * MAX_ANSWER))
            self.close_connection = True
        elif self.path == "/not-json":
            self._send(200, b"<html>hello</html>")
        else:
            self._send(200, b'{"model_version_status": []}')

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(("POST", self.path))
        self._send(200, json.dumps(PREDICT_ANSWER).encode())

    def log_message(self, format, *args):  # noqa: A002
        pass


def _start_backend():
    handler = type("Backend", (_Backend,), {"received": [], "metadata_ok": threading.Event()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


@pytest.fixture
def backend():
    server, handler = _start_backend()
    yield handler, f"http://127.0.0.1:{server.server_port}"
    handler.metadata_ok.set()
    server.shutdown()


@pytest.fixture
def proxy(backend, tmp_path):
    """(proxy URL, LoggingProxy) in front of `backend`, logging every request."""
    logging_proxy = LoggingProxy(backend[1], "cifar10", str(tmp_path / "requests"), 1.0,
                                 2**20, LIMITS, timeout_s=TIMEOUT_S,
                                 max_answer_bytes=MAX_ANSWER, metadata_refresh_s=60)
    server = serve_http(logging_proxy, "127.0.0.1", 0, LIMITS)
    yield f"http://127.0.0.1:{server.server_port}", logging_proxy
    server.shutdown()
    logging_proxy.requests_log.close(timeout_s=1)


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_requests_go_only_to_the_backend(backend, proxy):
    """The targets that once reached another port or host through the proxy are
    refused, and an absolute URI reaches the backend by its path alone."""
    handler, _ = backend
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen(8)
    other.settimeout(0.5)
    other_port = other.getsockname()[1]
    try:
        for target in (f":{other_port}/secret", f"@127.0.0.1:{other_port}/x",
                       ".example.org/x", "*"):
            status, body = first_answer(proxy[0], f"GET {target} HTTP/1.1\r\n\r\n".encode())
            assert status == 400 and "neither a path" in body["error"], (target, body)
        status, _ = first_answer(proxy[0], f"GET http://127.0.0.1:{other_port}/v1/models/"
                                           f"cifar10?x=1 HTTP/1.1\r\n\r\n".encode())
        assert status == 200
        with pytest.raises(socket.timeout):
            other.accept()  # nothing came to the other port
    finally:
        other.close()
    assert handler.received == [("GET", "/v1/models/cifar10?x=1")]


def test_what_could_smuggle_a_request_is_refused_before_the_backend(backend, proxy):
    handler, _ = backend
    hidden = b"GET /v1/models/cifar10/metadata HTTP/1.1\r\n\r\n"
    for framing in (b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
                    b"Content-Length: 2\r\nContent-Length: 50\r\n",
                    b"Transfer-Encoding: chunked\r\n"):
        payload = (b"POST /v1/models/cifar10:predict HTTP/1.1\r\n" + framing + b"\r\n{}"
                   + hidden)
        assert answer_statuses(proxy[0], payload, timeout=5)[0] in (400, 411)
    # A GET's body is read and dropped: the GET it holds is not sent on.
    payload = (b"GET /v1/models/cifar10 HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
               % len(hidden) + hidden)
    assert answer_statuses(proxy[0], payload, timeout=1.5) == [200]
    assert handler.received == [("GET", "/v1/models/cifar10")]


def test_a_backend_s_answer_has_one_deadline_and_bounds(proxy):
    """A trickling answer ends at the deadline (504), one cut short or over the size
    limit or not JSON becomes 502, each with a JSON error, and the proxy goes on."""
    started = time.monotonic()
    status, body = _get(proxy[0] + "/trickle")
    assert status == 504 and f"did not answer within {TIMEOUT_S:g} s" in body["error"]
    assert time.monotonic() - started < TIMEOUT_S + 2
    for path, message in (("/cut", "broke off after 17 of 1000 bytes"),
                          ("/huge", "over the proxy's limit of 0.0625 MiB"),
                          ("/huge-unannounced", "over the proxy's limit"),
                          ("/not-json", "not a JSON object")):
        status, body = _get(proxy[0] + path)
        assert status == 502 and message in body["error"], (path, body)
    assert _get(proxy[0] + "/v1/models/cifar10")[0] == 200


def test_logging_asks_the_backend_nothing_on_a_request_s_path(backend, proxy):
    """With the backend's metadata hanging, predicts are answered at once; the request
    log's writer asks for the metadata once per refresh interval, off the path, and its
    records are written once the metadata answers."""
    handler, _ = backend
    url, logging_proxy = proxy
    request = urllib.request.Request(url + "/v1/models/cifar10:predict", method="POST",
                                     data=json.dumps({"instances": ["eA=="]}).encode())
    for _ in range(5):
        started = time.monotonic()
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read()) == PREDICT_ANSWER
        assert time.monotonic() - started < 1.0
    outcomes = logging_proxy.requests_log.records
    deadline = time.monotonic() + 10
    while outcomes.labels(request_log.FAILED)._value.get() < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    # Asked once (it timed out); the other records waited for no second call.
    assert outcomes.labels(request_log.FAILED)._value.get() == 5
    assert [call for call in handler.received if call[1].endswith("/metadata")] == [
        ("GET", "/v1/models/cifar10/metadata")]
    handler.metadata_ok.set()
    logging_proxy.metadata_refresh_s = 0.0
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
    while outcomes.labels(request_log.WRITTEN)._value.get() < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert outcomes.labels(request_log.WRITTEN)._value.get() == 1


_LINES = st.sampled_from([
    b"Content-Length: 0\r\n", b"Content-Length: 2\r\n", b"Content-Length: 2\r\n" * 2,
    b"Transfer-Encoding: chunked\r\n", b"Content-Length : 2\r\n", b"Host: x\r\n y\r\n",
    b"Expect: 100-continue\r\nContent-Length: 2\r\n", b"Connection: close\r\n", b""])


@FUZZ
@given(payload=st.one_of(
    st.binary(max_size=200),
    st.builds(lambda method, target, lines, body: method + b" " + target + b" HTTP/1.1\r\n"
              + b"".join(lines) + b"\r\n" + body,
              st.sampled_from([b"GET", b"POST", b"PUT", b"\x00"]),
              st.one_of(st.sampled_from([
                  b"/v1/models/cifar10", b"/v1/models/cifar10:predict", b":1/x", b"@h:1/x",
                  b"http://h:1/v1/models/cifar10", b"//h/x", b"*", b".e.org/x"]),
                  st.binary(min_size=1, max_size=30)),
              st.lists(_LINES, max_size=3), st.binary(max_size=60))))
@example(payload=b"GET :1/secret HTTP/1.1\r\n\r\n")
@example(payload=b"POST /v1/models/cifar10:predict HTTP/1.1\r\nContent-Length: 2\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n{}GET /x HTTP/1.1\r\n\r\n")
def test_fuzz_the_proxy_s_request_parsing(backend, proxy, payload):
    """Whatever bytes arrive, the answer is a status with the JSON error shape (or a
    close for a blank request line), never a hang or a 500; every request the backend
    gets has a path, and it is sent no more requests than the bytes held request
    lines."""
    handler, _ = backend
    handler.received.clear()
    try:
        status, body = first_answer(proxy[0], payload + b"\r\n\r\n",
                                    timeout=LIMITS.read_timeout_s + 5)
    except socket.timeout:
        pytest.fail(f"no answer and no close within the read timeout for {payload!r}")
    if status is not None:
        assert status < 500 or status in (501, 503), (status, body)
        assert isinstance(body, dict) and (status == 200 or set(body) == {"error"})
    time.sleep(0.05)
    assert all(path.startswith("/") for _, path in handler.received), handler.received
    # The request log's own metadata lookups (in the background) aside.
    forwarded = [call for call in handler.received if not call[1].endswith("/metadata")]
    assert len(forwarded) <= payload.count(b" HTTP/1.1"), handler.received
    assert _get(proxy[0] + "/v1/models/cifar10")[0] == 200
