"""`python -m serving proxy`: TF Serving's REST API passed through to a backend, logging
a sample of the answered predict and classify requests as the embedded server does
(serving/request_log.py).

Open-source TF Serving cannot log requests (its `logging_config` needs a request
logger it does not ship: tensorflow/serving#408, #1846), so this runs beside it as a
sidecar: clients call the proxy's port, the proxy calls TF Serving's. Requests and
answers pass through unchanged (as JSON); the proxy has the embedded server's HTTP
limits (framing, target, size, time, connections: serving/http_checks.py and
serving/limits.py) and its own Prometheus metrics on the same path.

The backend is called at the backend's address with the request's path and query
only. Its answer has one deadline from connect to last byte (`timeout_s`) and a size
limit (`max_answer_bytes`); a broken, oversized or non-JSON answer becomes 502, a late
one 504, each with a JSON error.

TF Serving's REST predict answer does not name the version that answered, so a logged
record takes the version from the backend's metadata API, which the request log's
writer thread asks at most once per `metadata_refresh_s` per model path: no request
waits for it. Around a push, a record can name the version that answered just before
or after. The input and output dtypes come from the same metadata, so the records
equal the embedded server's.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

import numpy as np

from components.contract import DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE
from serving import request_log
from serving.errors import ServingError, invalid
from serving.http_checks import origin_form, refused_target
from serving.limits import Limits
from serving.metrics import RequestRecord, ServerMetrics
from serving.request_log import RequestLog
from serving.rest_codec import (METHOD_OF_SUFFIX, MODEL_PATH, classify_examples,
                                parse_json_body, predict_inputs)


def _columns(answer: dict, output_names: list) -> Dict[str, list]:
    """A REST predict answer's outputs by name, in row or columnar form."""
    if "predictions" in answer:
        rows = answer["predictions"]
        if rows and all(isinstance(row, dict) for row in rows):
            return {name: [row[name] for row in rows] for name in rows[0]}
        return {output_names[0]: rows}
    outputs = answer["outputs"]
    return outputs if isinstance(outputs, dict) else {output_names[0]: outputs}


def _array(values, dtype) -> np.ndarray:
    import tensorflow as tf

    if dtype == tf.string:
        def encoded(item):
            if isinstance(item, list):
                return [encoded(sub) for sub in item]
            return item.encode() if isinstance(item, str) else item
        return np.array(encoded(values), dtype=object)
    return np.asarray(values, dtype=dtype.as_numpy_dtype)


def backend_problem(backend_url: str) -> Optional[str]:
    """What is wrong with `--backend`, or None."""
    parts = urlsplit(backend_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"--backend {backend_url}: not an http(s) URL with a host"
    if parts.query or parts.fragment or parts.username or parts.password:
        return f"--backend {backend_url}: a query, fragment or user name is not allowed"
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return f"--backend {backend_url}: the port is not a number"
    return None


def bad_gateway(message: str) -> ServingError:
    return ServingError("UNAVAILABLE", message, http_status=502)


class LoggingProxy:
    """What RestApi is to the embedded server, for a backend elsewhere."""

    def __init__(self, backend_url: str, model_name: str, log_dir: str,
                 sampling_rate: float, max_log_bytes: int, limits: Limits = Limits(),
                 timeout_s: float = 60.0, max_answer_bytes: int = 8 * 2**20,
                 metadata_refresh_s: float = 10.0) -> None:
        self.backend_url = backend_url.rstrip("/")
        self._backend = urlsplit(self.backend_url)
        self.limits, self.timeout_s = limits, timeout_s
        self.max_answer_bytes, self.metadata_refresh_s = max_answer_bytes, metadata_refresh_s
        self.metrics = ServerMetrics(None, model_name)
        self.requests_log = RequestLog(log_dir, sampling_rate, max_log_bytes,
                                       self.metrics.registry)
        # Model path -> (monotonic time asked, metadata or None when asking failed);
        # read and written by the request log's writer thread only.
        self._metadata: Dict[str, tuple] = {}

    def _call(self, method: str, target: str, body: Optional[bytes]) -> Tuple[int, dict]:
        """(status, JSON answer) of the backend for `target` (a path and query), within
        one deadline from connect to the answer's last byte."""
        connection_type = (http.client.HTTPSConnection if self._backend.scheme == "https"
                           else http.client.HTTPConnection)
        connection = connection_type(self._backend.hostname, self._backend.port,
                                     timeout=self.timeout_s)
        started = time.monotonic()
        try:
            connection.connect()
        except OSError as error:
            connection.close()
            raise ServingError("UNAVAILABLE", f"the backend {self.backend_url} cannot be "
                               f"reached: {error.strerror or error}") from None
        late = threading.Event()

        def stop_reading():  # whatever the backend does, the reads end now
            late.set()
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except (OSError, AttributeError):
                pass

        deadline = threading.Timer(max(self.timeout_s - (time.monotonic() - started), 0),
                                   stop_reading)
        deadline.daemon = True
        deadline.start()
        try:
            connection.request(method, self._backend.path + target,
                               body=body if method == "POST" else None,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = self._read_answer(response)
        except (OSError, http.client.HTTPException, ServingError) as error:
            if late.is_set():  # what broke was the deadline's doing
                raise ServingError("DEADLINE_EXCEEDED", f"the backend {self.backend_url} "
                                   f"did not answer within {self.timeout_s:g} s") from None
            if isinstance(error, ServingError):
                raise
            raise bad_gateway(f"the backend's answer broke off: "
                              f"{type(error).__name__}: {error}"[:300]) from None
        finally:
            deadline.cancel()
            connection.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            if response.status == 200:
                raise bad_gateway("the backend's answer is not a JSON object")
            answer = {"error": raw.decode("utf-8", "replace")[:1000]}
        return response.status, answer

    def _read_answer(self, response) -> bytes:
        """The answer's body, refused when over max_answer_bytes (before reading it
        when it says its length) or shorter than it said."""
        announced = (response.getheader("Content-Length") or "").strip()
        too_large = bad_gateway(f"the backend's answer is over the proxy's limit of "
                                f"{self.max_answer_bytes / 2**20:g} MiB")
        if announced.isdigit() and int(announced) > self.max_answer_bytes:
            raise too_large
        raw = response.read(self.max_answer_bytes + 1)
        if len(raw) > self.max_answer_bytes:
            raise too_large
        if response.length:  # http.client's count of announced bytes still unread
            raise bad_gateway(f"the backend's answer broke off after {len(raw)} of "
                              f"{announced} bytes")
        return raw

    def handle(self, method: str, path: str, body: Optional[bytes]) -> tuple:
        """Returns (HTTP status, JSON-able answer): the backend's."""
        record, code = RequestRecord(api="rest"), "OK"
        target = origin_form(path)
        match = target and MODEL_PATH.match(target.split("?", 1)[0])
        if match:
            record.model = self.metrics.known_model(match["name"])
            record.method = METHOD_OF_SUFFIX.get(match["suffix"], "")
        try:
            if target is None:
                raise invalid(refused_target(path))
            status, answer = self._call(method, target, body)
            if status != 200:
                code = "INVALID_ARGUMENT" if status < 500 else "UNAVAILABLE"
            elif method == "POST" and match and match["suffix"] in (":predict",
                                                                    ":classify"):
                self.requests_log.offer(lambda: self._record(match, body, answer))
            return status, answer
        except ServingError as error:
            code = error.code
            return error.http_status, {"error": error.message}
        finally:
            self.metrics.observe(record, code)

    def _backend_metadata(self, model_path: str) -> dict:
        """The backend's metadata of `model_path`, asked again once it is older than
        metadata_refresh_s (a failure too, so a hanging backend costs one wait per
        interval). Runs on the request log's writer thread."""
        asked, metadata = self._metadata.get(model_path, (None, None))
        if asked is None or time.monotonic() - asked >= self.metadata_refresh_s:
            try:
                status, answer = self._call("GET", f"{model_path}/metadata", None)
                metadata = answer if status == 200 else None
                problem = f"{status} {answer}"
            except ServingError as error:
                metadata, problem = None, error.message
            self._metadata[model_path] = asked, metadata = time.monotonic(), metadata
            if metadata is None:
                raise invalid(f"the backend's metadata of {model_path}: {problem}"[:300])
        if metadata is None:
            raise invalid(f"the backend's metadata of {model_path} could not be read "
                          f"{time.monotonic() - asked:.0f} s ago")
        return metadata

    def _record(self, match, body: bytes, answer: dict):
        """The PredictionLog of an answered request, as the embedded server logs it."""
        import tensorflow as tf
        from tensorflow.core.framework import types_pb2

        from serving import inference

        model_path = match.group(0)[:match.start("suffix")] if match["suffix"] else \
            match.group(0)
        metadata = self._backend_metadata(model_path)
        version = int(metadata["model_spec"]["version"])
        signature_defs = metadata["metadata"]["signature_def"]["signature_def"]
        request = parse_json_body(body, self.limits.max_json_depth)
        name = match["name"]
        if match["suffix"] == ":classify":
            signature_name = request.get("signature_name") or EXAMPLES_SIGNATURE
            serialized = classify_examples(request, self.limits)
            results = [[(label, score) for label, score in scores]
                       for scores in answer["result"]]
            return request_log.record_of(
                inference.classification_request(name, signature_name, serialized),
                inference.classification_response(name, version, signature_name, results))
        signature_name = request.get("signature_name") or DEFAULT_SIGNATURE
        signature = signature_defs[signature_name]

        def dtypes(tensors: dict) -> dict:
            return {key: tf.as_dtype(types_pb2.DataType.Value(info["dtype"]))
                    for key, info in tensors.items()}

        input_dtypes, output_dtypes = dtypes(signature["inputs"]), dtypes(signature["outputs"])
        _, inputs = predict_inputs(request, sorted(input_dtypes))
        outputs = {key: _array(values, output_dtypes[key])
                   for key, values in _columns(answer, sorted(output_dtypes)).items()}
        return request_log.record_of(
            inference.predict_request(name, signature_name, inputs, {
                key: tf.TensorSpec(None, dtype) for key, dtype in input_dtypes.items()}),
            inference.predict_response(name, version, signature_name, outputs))
