"""HTTP/1.1 for the embedded server and the proxy: a handler that checks each request's
framing and target before it reads the body, bounds its size and the time a client may
take, and answers metrics; a server that caps connections per client and in all."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from serving import http_checks
from serving.limits import Limits
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.metrics import METRICS_PATH, ServerMetrics, code_of_http_status


class _Handler(BaseHTTPRequestHandler):
    api: object  # what answers: `handle(method, path, body)` and its `metrics`
    limits: Limits
    protocol_version = "HTTP/1.1"

    def setup(self):
        # Every read of this connection waits at most this long (the request line and
        # headers too): a stalled or slow client cannot hold a thread forever.
        self.timeout = self.limits.read_timeout_s
        super().setup()

    def handle_one_request(self):
        # The socket timeout bounds each read; this bounds the request line and headers
        # together, so a client sending a byte at a time cannot hold the thread.
        self._header_deadline = threading.Timer(self.limits.read_timeout_s,
                                                self._drop_slow_client)
        self._header_deadline.daemon = True
        self._header_deadline.start()
        try:
            super().handle_one_request()
        finally:
            self._header_deadline.cancel()

    def _drop_slow_client(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def parse_request(self):
        parsed = super().parse_request()
        self._header_deadline.cancel()
        if parsed and self.request_version == "HTTP/0.9":
            # "GET <path>" alone: an HTTP/0.9 answer would have no status line.
            self.send_error(400, "HTTP/0.9 requests are not supported")
            return False
        return parsed and self._framed_and_targeted()

    def _framed_and_targeted(self) -> bool:
        """Refuses (and closes) a request whose body's framing is ambiguous or whose
        target is not this server's (serving/http_checks.py); else takes the target's
        path and query as `self.path`."""
        refusal = http_checks.framing_refusal(self.headers)
        target = http_checks.origin_form(self.path)
        if refusal is None and target is None:
            refusal = 400, http_checks.refused_target(self.path)
        if refusal is not None:
            self.close_connection = True
            self._refuse(refusal[0], {"error": refusal[1]})
            return False
        self.path = target
        return True

    def handle_expect_100(self):
        """`Expect: 100-continue` with a body over the limit: 413 now, not "continue";
        only a POST is told to continue (anything else gets its final answer at once)."""
        if not self._framed_and_targeted():
            return False
        if self.command != "POST":
            return True
        length = http_checks.content_length(self.headers)
        if length is not None and length > self.limits.max_request_bytes:
            self._refuse_too_large(length)
            return False
        return super().handle_expect_100()

    def _refuse_too_large(self, length: int) -> None:
        self.close_connection = True
        self._refuse(413, {"error": f"the request body is {length} bytes, over the "
                                     f"limit of {self.limits.max_request_bytes}"})

    def _refuse(self, status: int, payload: dict) -> None:
        """An answer before routing (RestApi.handle counts the others)."""
        self.api.metrics.refused(code_of_http_status(status))
        self._respond(status, payload)

    def _respond(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (a malformed request line or headers, an unknown
        method, a line too long) in the JSON error shape instead of an HTML page."""
        self.close_connection = True
        # A line http.server could not parse counts as HTTP/0.9, which has no status line
        # or headers; every answer here has both.
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        self._refuse(code, {"error": f"{phrase}: {message}" if message else phrase})

    def _read_body(self, length: int, keep: bool = True) -> Optional[bytes]:
        """The body, read within the timeout from the first byte to the last (b"" when
        not `keep`); None (after answering 408) when the client sends less than it
        announced in time."""
        deadline = time.monotonic() + self.limits.read_timeout_s
        chunks, remaining = [], length
        try:
            while remaining > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(remaining, 1 << 20))
                if not chunk:
                    raise TimeoutError  # the client closed its side early
                if keep:
                    chunks.append(chunk)
                remaining -= len(chunk)
            self.connection.settimeout(self.limits.read_timeout_s)
        except (TimeoutError, OSError):
            self.close_connection = True
            self._refuse(408, {"error": f"the request body announced {length} bytes; "
                                         f"{length - remaining} arrived within "
                                         f"{self.limits.read_timeout_s:g} s"})
            return None
        return b"".join(chunks)

    def _refused_as_too_large(self, length: int) -> bool:
        """Whether a body of `length` bytes is over the limit, and so answered: it is
        read (within the timeout) and dropped, so that the client gets 413 rather than
        a reset (408 if it does not send it in time), and the connection is closed."""
        if length <= self.limits.max_request_bytes:
            return False
        if self._read_body(min(length, 2 * self.limits.max_request_bytes),
                           keep=False) is not None:  # None: already answered 408
            self._refuse_too_large(length)
        return True

    def do_GET(self):  # noqa: N802 (http.server's naming)
        # A body on a GET is read and dropped (as TF Serving does): left unread, its
        # bytes would be parsed as the connection's next request.
        length = http_checks.content_length(self.headers) or 0
        if self._refused_as_too_large(length):
            return
        if length and self._read_body(length, keep=False) is None:
            return  # already answered 408
        if self.path == METRICS_PATH:
            body = self.api.metrics.exposition()
            self.send_response(200)
            self.send_header("Content-Type", METRICS_CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self._respond(*self.api.handle("GET", self.path, None))

    def do_POST(self):  # noqa: N802
        length = http_checks.content_length(self.headers)
        if length is None:
            self.close_connection = True
            self._refuse(411, {"error": "a Content-Length header is required"})
            return
        if self._refused_as_too_large(length):
            return
        body = self._read_body(length)
        if body is not None:
            self._respond(*self.api.handle("POST", self.path, body))

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass  # one line per request would drown the server's own messages


class _BoundedServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once; the next one gets
    503 and is closed."""

    daemon_threads = True

    def __init__(self, address, handler, limits: Limits, server_metrics: ServerMetrics):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(limits.max_connections)
        self._limits = limits
        self._metrics = server_metrics

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self._metrics.refused(code_of_http_status(503))
            body = json.dumps({"error": f"the server is handling "
                                        f"{self._limits.max_connections} connections, its "
                                        f"limit; retry later"}).encode()
            try:
                request.settimeout(0.5)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\n"
                                b"Content-Type: application/json\r\n"
                                b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                                b"Connection: close\r\n\r\n" + body)
                # What the client already sent is read (briefly) so that closing does not
                # reset the connection before the client reads the answer.
                request.shutdown(socket.SHUT_WR)
                request.recv(1 << 16)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        # A client that vanished mid-answer is not the server's error; one line, no
        # traceback.
        print(f"REST: connection from {client_address[0]} ended: "
              f"{sys.exc_info()[1]!r}"[:300], flush=True)


def serve_http(api, host: str, port: int, limits: Limits) -> ThreadingHTTPServer:
    """Serves `api` (anything with RestApi's `handle` and `metrics`) over HTTP with the
    same limits, in a background thread; returns the server (`.server_port`)."""
    handler = type("RestHandler", (_Handler,), {"api": api, "limits": limits})
    server = _BoundedServer((host, port), handler, limits, api.metrics)
    threading.Thread(target=server.serve_forever, name="rest-server", daemon=True).start()
    return server
