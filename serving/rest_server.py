"""TF Serving's REST API over a ModelStore (docs/ARCHITECTURE.md says what it covers).

    GET  /v1/models/NAME[/versions/V]              model status
    GET  /v1/models/NAME[/versions/V]/metadata     signature defs
    POST /v1/models/NAME[/versions/V]:predict      row ("instances") or columnar ("inputs")
    POST /v1/models/NAME[/versions/V]:classify     "examples" as JSON features

Bytes travel as {"b64": "..."}; every error is {"error": "..."} with a 4xx/5xx status.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import numpy as np
from google.protobuf import json_format

from serving import inference
from serving.errors import ServingError, invalid, not_found
from serving.model_store import ModelStore

_MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?$")

DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024


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


def _predict_inputs(body: dict, input_names: list) -> tuple:
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


class RestApi:
    """Request handling, independent of the HTTP server it runs in."""

    def __init__(self, store: ModelStore):
        self.store = store

    def handle(self, method: str, path: str, body: Optional[bytes]) -> tuple:
        """Returns (HTTP status, JSON-able response)."""
        try:
            return 200, self._route(method, path, body)
        except ServingError as error:
            return error.http_status, {"error": error.message}

    def _route(self, method: str, path: str, body: Optional[bytes]) -> dict:
        match = _MODEL_PATH.match(path.split("?", 1)[0])
        if not match:
            raise not_found(f"Malformed request: {method} {path}")
        if match["label"] is not None:
            raise invalid("version labels are not supported; use /versions/<number>")
        version = None
        if match["version"] is not None:
            if not match["version"].isdigit():
                raise invalid(f"version {match['version']!r} is not a number")
            version = int(match["version"])
        name, suffix = match["name"], match["suffix"]
        if method == "GET" and suffix is None:
            return self._status(name, version)
        if method == "GET" and suffix == "/metadata":
            return self._metadata(name, version)
        if method == "POST" and suffix in (":predict", ":classify", ":regress"):
            loaded = self.store.get(name, version)
            try:
                request = json.loads(body or b"")
            except (ValueError, UnicodeDecodeError) as error:
                raise invalid(f"the request body is not valid JSON: {error}") from None
            if not isinstance(request, dict):
                raise invalid("the request body must be a JSON object")
            if suffix == ":predict":
                return self._predict(loaded, request)
            if suffix == ":classify":
                return self._classify(loaded, request)
            raise invalid("this model has no regression signature")
        raise not_found(f"Malformed request: {method} {path}")

    def _status(self, name: str, version: Optional[int]) -> dict:
        return {"model_version_status": [
            {"version": str(status.version), "state": status.state,
             "status": {"error_code": "OK" if not status.error_message else "UNKNOWN",
                        "error_message": status.error_message}}
            for status in self.store.statuses(name, version)]}

    def _metadata(self, name: str, version: Optional[int]) -> dict:
        loaded = self.store.get(name, version)
        signature_defs = {key: json_format.MessageToDict(value)
                          for key, value in loaded.signature_defs.items()}
        return {"model_spec": {"name": name, "signature_name": "",
                               "version": str(loaded.version)},
                "metadata": {"signature_def": {"signature_def": signature_defs}}}

    def _predict(self, loaded, request: dict) -> dict:
        signature_name, function = inference.signature(loaded,
                                                       request.get("signature_name", ""))
        input_names = sorted(inference.input_specs(function))
        request_format, inputs = _predict_inputs(request, input_names)
        _, outputs = inference.run(loaded, signature_name, inputs)
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

    def _classify(self, loaded, request: dict) -> dict:
        examples = decode_b64(request.get("examples"))
        if not isinstance(examples, list) or not examples:
            raise invalid("\"examples\" must be a non-empty list of feature objects")
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
        results = inference.classify(loaded, serialized, request.get("signature_name"))
        return {"result": [[[label, score] for label, score in scores]
                           for scores in results]}


class _Handler(BaseHTTPRequestHandler):
    api: RestApi
    max_request_bytes: int
    protocol_version = "HTTP/1.1"

    def _respond(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._respond(*self.api.handle("GET", self.path, None))

    def do_POST(self):  # noqa: N802
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            self._respond(411, {"error": "a Content-Length header is required"})
            return
        if length > self.max_request_bytes:
            # Read and dropped, so the client gets the answer rather than a reset.
            self.close_connection = True
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            self._respond(413, {"error": f"the request body is {length} bytes, over the "
                                         f"limit of {self.max_request_bytes}"})
            return
        self._respond(*self.api.handle("POST", self.path, self.rfile.read(length)))

    def log_message(self, format, *args):  # noqa: A002 (http.server's signature)
        pass  # one line per request would drown the server's own messages


def start(store: ModelStore, host: str, port: int,
          max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> ThreadingHTTPServer:
    """Starts serving in a background thread; returns the server (`.server_port`)."""
    handler = type("RestHandler", (_Handler,), {"api": RestApi(store),
                                                "max_request_bytes": max_request_bytes})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="rest-server", daemon=True).start()
    return server
