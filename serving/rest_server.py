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

import threading
from http.server import ThreadingHTTPServer
from typing import Optional

from google.protobuf import json_format

from components.contract import EXAMPLES_SIGNATURE
from serving import inference, request_log
from serving.errors import ServingError, invalid, not_found
from serving.http_transport import serve_http
from serving.limits import Limits
from serving.metrics import RequestRecord, ServerMetrics, record_loaded
from serving.model_store import ModelStore
from serving.request_log import RequestLog
from serving.rest_codec import (METHOD_OF_SUFFIX, MODEL_PATH, classify_examples, json_value,
                                parse_json_body, predict_inputs)

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
                return {"outputs": json_value(value, name)}
            return {"outputs": {name: json_value(value, name)
                                for name, value in outputs.items()}}
        columns = {name: json_value(value, name) for name, value in outputs.items()}
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


def start(store: ModelStore, host: str, port: int, limits: Limits = Limits(),
          slots: Optional[threading.Semaphore] = None,
          metrics: Optional[ServerMetrics] = None,
          request_log: Optional[RequestLog] = None) -> ThreadingHTTPServer:
    """Starts serving in a background thread; returns the server (`.server_port`).
    `slots`: shared with the gRPC server (see Limits.inference_slots); `metrics`: the
    server's registry, which gRPC counts into too; `request_log`: where a sample of
    the answered predict and classify requests goes (shared with gRPC too)."""
    return serve_http(RestApi(store, limits, slots, metrics, request_log), host, port, limits)
