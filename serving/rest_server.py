"""TF Serving's REST API over a ModelStore (docs/ARCHITECTURE.md says what it covers).

    GET  /v1/models/NAME[/versions/V|/labels/L]              model status (every version
                                                             when by label, as TF Serving)
    GET  /v1/models/NAME[/versions/V|/labels/L]/metadata     signature defs
    POST /v1/models/NAME[/versions/V|/labels/L]:predict      row ("instances") or columnar ("inputs")
    POST /v1/models/NAME[/versions/V|/labels/L]:classify     "examples" as JSON features

    GET  /monitoring/prometheus/metrics                      Prometheus metrics (metrics.py)

Bytes travel as {"b64": "..."}; every error is {"error": "..."} with a 4xx/5xx status.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import numpy as np
from google.protobuf import json_format

from components.contract import EXAMPLES_SIGNATURE
from serving import http_checks, inference, request_log
from serving.errors import ServingError, invalid, not_found
from serving.limits import Limits
from serving.metrics import CLASSIFY, METADATA, PREDICT, STATUS
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.metrics import (METRICS_PATH, RequestRecord, ServerMetrics, code_of_http_status,
                             record_loaded)
from serving.model_store import ModelStore
from serving.request_log import RequestLog

METHOD_OF_SUFFIX = {None: STATUS, "/metadata": METADATA, ":predict": PREDICT,
                    ":classify": CLASSIFY}
MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?$")


def decode_b64(value):
    """Replaces every {"b64": ...} object in a JSON value by its bytes."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise invalid("a {\"b64\": ...} value is not valid base64") from None
        return {key: decode_b64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_b64(item) for item in value]
    return value


def _json_value(array: np.ndarray, output_name: str):
    """A numpy output as TF Serving writes it: strings as text unless the output's name
    ends in `_bytes` (or they are not UTF-8), then as {"b64": ...}."""
    if array.dtype == object or array.dtype.kind == "S":
        def convert(item):
            if isinstance(item, bytes):
                if not output_name.endswith("_bytes"):
                    try:
                        return item.decode("utf-8")
                    except UnicodeDecodeError:
                        pass
                return {"b64": base64.b64encode(item).decode("ascii")}
            return [convert(sub) for sub in item]
        return [convert(item) for item in array.tolist()] if array.ndim else convert(
            array.item())
    return array.tolist()


def predict_inputs(body: dict, input_names: list) -> tuple:
    if ("instances" in body) == ("inputs" in body):
        raise invalid("the request must have exactly one of \"instances\" (row format) "
                      "or \"inputs\" (columnar format)")
    if "instances" in body:
        instances = decode_b64(body["instances"])
        if not isinstance(instances, list):
            raise invalid("\"instances\" must be a list")
        if not instances:
            raise invalid("\"instances\" is empty")
        if all(isinstance(row, dict) for row in instances):
            keys = {frozenset(row) for row in instances}
            if len(keys) != 1:
                raise invalid("every instance must name the same inputs")
            return "row", {key: [row[key] for row in instances] for key in next(iter(keys))}
        if len(input_names) != 1:
            raise invalid(f"the signature takes inputs {input_names}: each instance must "
                          f"be an object naming them")
        return "row", {input_names[0]: instances}
    inputs = decode_b64(body["inputs"])
    if isinstance(inputs, dict):
        return "columnar", inputs
    if len(input_names) != 1:
        raise invalid(f"the signature takes inputs {input_names}: \"inputs\" must be an "
                      f"object naming them")
    return "columnar", {input_names[0]: inputs}


def classify_examples(request: dict, limits: Limits) -> list:
    """A REST classify request's examples, each merged with the context, serialized."""
    examples = decode_b64(request.get("examples"))
    if not isinstance(examples, list) or not examples:
        raise invalid("\"examples\" must be a non-empty list of feature objects")
    limits.check_batch(len(examples), "examples")
    context = decode_b64(request.get("context") or {})
    if not isinstance(context, dict):
        raise invalid("\"context\" must be an object of features")
    serialized = []
    for example in examples:
        if isinstance(example, dict) and set(example) & set(context):
            raise invalid(f"features {sorted(set(example) & set(context))} appear in "
                          f"both the context and an example")
        serialized.append(_example_from_json({**context, **example}
                                             if isinstance(example, dict) else example))
    return serialized


def _example_from_json(features: dict) -> bytes:
    import tensorflow as tf

    if not isinstance(features, dict):
        raise invalid("each entry of \"examples\" must be an object of features")
    feature_map = {}
    for key, value in features.items():
        values = value if isinstance(value, list) else [value]
        if all(isinstance(item, (bytes, str)) for item in values):
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[
                item if isinstance(item, bytes) else item.encode() for item in values]))
        elif all(isinstance(item, int) and not isinstance(item, bool) for item in values):
            feature = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        elif all(isinstance(item, (int, float)) for item in values):
            feature = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            raise invalid(f"feature {key!r}: values must all be strings, all integers or "
                          f"all numbers")
        feature_map[key] = feature
    return tf.train.Example(features=tf.train.Features(feature=feature_map)).SerializeToString()


def json_depth(value) -> int:
    """How deeply lists and objects nest in a parsed JSON value (a scalar is 0)."""
    depth, level = 0, [(value, 1)]
    while level:
        item, item_depth = level.pop()
        children = item.values() if isinstance(item, dict) else (
            item if isinstance(item, list) else ())
        if isinstance(item, (dict, list)):
            depth = max(depth, item_depth)
            level.extend((child, item_depth + 1) for child in children)
    return depth


def parse_json_body(body: Optional[bytes], max_depth: int) -> dict:
    """The request body as a JSON object, refused when malformed or nested too deeply."""
    try:
        request = json.loads(body or b"")
    except RecursionError:  # deeper than the parser's own stack allows
        raise invalid(f"the request body nests deeper than the limit of {max_depth} "
                      f"levels") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(f"the request body is not valid JSON: {error}") from None
    depth = json_depth(request)
    if depth > max_depth:
        raise invalid(f"the request body nests {depth} levels deep, over the limit of "
                      f"{max_depth}")
    if not isinstance(request, dict):
        raise invalid("the request body must be a JSON object")
    return request


class RestApi:
    """Request handling, independent of the HTTP server it runs in."""

    def __init__(self, store: ModelStore, limits: Limits = Limits(),
                 slots: Optional[threading.Semaphore] = None,
                 metrics: Optional[ServerMetrics] = None,
                 request_log: Optional[RequestLog] = None):
        self.store = store
        self.metrics = metrics or ServerMetrics(store)
        self.request_log = request_log
        self.limits = limits
        self.slots = slots or limits.inference_slots()
        # Parsing a JSON body costs tens of times its size in Python objects: at most
        # this many bodies are parsed and converted at once (the rest wait, holding only
        # their bytes).
        self.parse_slots = limits.inference_slots()

    def handle(self, method: str, path: str, body: Optional[bytes]) -> tuple:
        """Returns (HTTP status, JSON-able response)."""
        record, code = RequestRecord(api="rest"), "OK"
        try:
            return 200, self._route(method, path, body, record)
        except ServingError as error:
            code = error.code
            return error.http_status, {"error": error.message}
        except Exception as error:  # a bug, not the client's fault: no traceback out
            code = "INTERNAL"
            print(f"REST: {method} {path[:200]} failed: {error!r}"[:500], flush=True)
            return 500, {"error": f"internal error ({type(error).__name__})"}
        finally:
            self.metrics.observe(record, code)

    def _route(self, method: str, path: str, body: Optional[bytes],
               record: RequestRecord) -> dict:
        match = MODEL_PATH.match(path.split("?", 1)[0])
        if not match:
            raise not_found(f"Malformed request: {method} {path}")
        record.model = self.metrics.known_model(match["name"])
        record.method = METHOD_OF_SUFFIX.get(match["suffix"], "")
        label = match["label"]
        version = None
        if match["version"] is not None:
            if not match["version"].isdigit():
                raise invalid(f"version {match['version']!r} is not a number")
            version = int(match["version"])
        name, suffix = match["name"], match["suffix"]
        if method == "GET" and suffix is None:
            return self._status(name, version, label)
        if method == "GET" and suffix == "/metadata":
            return self._metadata(name, version, label, record)
        if method == "POST" and suffix in (":predict", ":classify", ":regress"):
            loaded = self.store.get(name, version, label)
            record_loaded(record, loaded)
            with self.parse_slots:
                request = parse_json_body(body, self.limits.max_json_depth)
                if suffix == ":predict":
                    return self._predict(loaded, request, record)
                if suffix == ":classify":
                    return self._classify(loaded, request, record)
            raise invalid("this model has no regression signature")
        raise not_found(f"Malformed request: {method} {path}")

    def _status(self, name: str, version: Optional[int], label: Optional[str]) -> dict:
        return {"model_version_status": [
            {"version": str(status.version), "state": status.state,
             "status": {"error_code": "OK" if not status.error_message else "UNKNOWN",
                        "error_message": status.error_message}}
            for status in self.store.statuses(name, version, label)]}

    def _metadata(self, name: str, version: Optional[int], label: Optional[str],
                  record: RequestRecord) -> dict:
        loaded = self.store.get(name, version, label)
        record_loaded(record, loaded)
        signature_defs = {key: json_format.MessageToDict(value)
                          for key, value in loaded.signature_defs.items()}
        return {"model_spec": {"name": name, "signature_name": "",
                               "version": str(loaded.version)},
                "metadata": {"signature_def": {"signature_def": signature_defs}}}

    def _predict(self, loaded, request: dict, record: RequestRecord) -> dict:
        signature_name, function = inference.signature(loaded,
                                                       request.get("signature_name", ""))
        record_loaded(record, loaded, signature_name)
        input_names = sorted(inference.input_specs(function))
        request_format, inputs = predict_inputs(request, input_names)
        for value in inputs.values():
            if isinstance(value, list):
                self.limits.check_batch(len(value))
        _, outputs = inference.run(loaded, signature_name, inputs, limits=self.limits,
                                   slots=self.slots)
        if self.request_log is not None:
            name, specs = self.store.model_name, inference.input_specs(function)
            self.request_log.offer(lambda: request_log.record_of(
                inference.predict_request(name, signature_name, inputs, specs),
                inference.predict_response(name, loaded.version, signature_name, outputs)))
        if request_format == "columnar":
            if len(outputs) == 1:
                (name, value), = outputs.items()
                return {"outputs": _json_value(value, name)}
            return {"outputs": {name: _json_value(value, name)
                                for name, value in outputs.items()}}
        columns = {name: _json_value(value, name) for name, value in outputs.items()}
        if len(columns) == 1:
            return {"predictions": next(iter(columns.values()))}
        rows = len(next(iter(columns.values())))
        return {"predictions": [{name: column[row] for name, column in columns.items()}
                                for row in range(rows)]}

    def _classify(self, loaded, request: dict, record: RequestRecord) -> dict:
        record_loaded(record, loaded, request.get("signature_name") or EXAMPLES_SIGNATURE)
        serialized = classify_examples(request, self.limits)
        results = inference.classify(loaded, serialized, request.get("signature_name"),
                                     limits=self.limits, slots=self.slots)
        if self.request_log is not None:
            name = self.store.model_name
            signature_name = request.get("signature_name") or EXAMPLES_SIGNATURE
            self.request_log.offer(lambda: request_log.record_of(
                inference.classification_request(name, signature_name, serialized),
                inference.classification_response(name, loaded.version, signature_name,
                                                  results)))
        return {"result": [[[label, score] for label, score in scores]
                           for scores in results]}


class _Handler(BaseHTTPRequestHandler):
    api: RestApi
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


def start(store: ModelStore, host: str, port: int, limits: Limits = Limits(),
          slots: Optional[threading.Semaphore] = None,
          metrics: Optional[ServerMetrics] = None,
          request_log: Optional[RequestLog] = None) -> ThreadingHTTPServer:
    """Starts serving in a background thread; returns the server (`.server_port`).
    `slots`: shared with the gRPC server (see Limits.inference_slots); `metrics`: the
    server's registry, which gRPC counts into too; `request_log`: where a sample of
    the answered predict and classify requests goes (shared with gRPC too)."""
    return serve_http(RestApi(store, limits, slots, metrics, request_log), host, port, limits)


def serve_http(api, host: str, port: int, limits: Limits) -> ThreadingHTTPServer:
    """Serves `api` (anything with RestApi's `handle` and `metrics`) over HTTP with the
    same limits, in a background thread; returns the server (`.server_port`)."""
    handler = type("RestHandler", (_Handler,), {"api": api, "limits": limits})
    server = _BoundedServer((host, port), handler, limits, api.metrics)
    threading.Thread(target=server.serve_forever, name="rest-server", daemon=True).start()
    return server
