"""`python -m serving proxy`: TF Serving's REST API passed through to a backend, logging
a sample of the answered predict and classify requests as the embedded server does
(serving/request_log.py).

Open-source TF Serving cannot log requests (its `logging_config` needs a request
logger it does not ship: tensorflow/serving#408, #1846), so this runs beside it as a
sidecar: clients call the proxy's port, the proxy calls TF Serving's. Requests and
answers pass through unchanged (as JSON); the proxy has the embedded server's HTTP
limits (size, time, connections) and its own Prometheus metrics on the same path.

TF Serving's REST predict answer does not name the version that answered, so a logged
record takes the version from the backend's metadata API, asked when the record is
made (sampled requests only). Around a push, a record can name the version that
answers next rather than the one that answered. The input and output dtypes come from
the same metadata, so the records equal the embedded server's.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Dict, Optional, Tuple

import numpy as np

from components.contract import DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE
from serving import request_log
from serving.errors import ServingError, invalid
from serving.limits import Limits
from serving.metrics import RequestRecord, ServerMetrics
from serving.request_log import RequestLog
from serving.rest_server import (METHOD_OF_SUFFIX, MODEL_PATH, classify_examples,
                                 parse_json_body, predict_inputs)


def _json_answer(raw: bytes) -> dict:
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    return answer if isinstance(answer, dict) else {
        "error": raw.decode("utf-8", "replace")[:1000]}


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


class LoggingProxy:
    """What RestApi is to the embedded server, for a backend elsewhere."""

    def __init__(self, backend_url: str, model_name: str, log_dir: str,
                 sampling_rate: float, max_log_bytes: int, limits: Limits = Limits(),
                 timeout_s: float = 60.0) -> None:
        self.backend_url = backend_url.rstrip("/")
        self.limits, self.timeout_s = limits, timeout_s
        self.metrics = ServerMetrics(None, model_name)
        self.requests_log = RequestLog(log_dir, sampling_rate, max_log_bytes,
                                       self.metrics.registry)

    def _call(self, method: str, path: str, body: Optional[bytes]) -> Tuple[int, dict]:
        request = urllib.request.Request(
            self.backend_url + path, data=body if method == "POST" else None,
            method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.status, _json_answer(response.read())
        except urllib.error.HTTPError as error:
            return error.code, _json_answer(error.read())
        except (urllib.error.URLError, OSError) as error:
            raise ServingError("UNAVAILABLE", f"the backend {self.backend_url} cannot be "
                               f"reached: {getattr(error, 'reason', error)}") from None

    def handle(self, method: str, path: str, body: Optional[bytes]) -> tuple:
        """Returns (HTTP status, JSON-able answer): the backend's."""
        record, code = RequestRecord(api="rest"), "OK"
        match = MODEL_PATH.match(path.split("?", 1)[0])
        if match:
            record.model = self.metrics.known_model(match["name"])
            record.method = METHOD_OF_SUFFIX.get(match["suffix"], "")
        try:
            status, answer = self._call(method, path, body)
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

    def _record(self, match, body: bytes, answer: dict):
        """The PredictionLog of an answered request, as the embedded server logs it."""
        import tensorflow as tf
        from tensorflow.core.framework import types_pb2

        from serving import inference

        model_path = match.group(0)[:match.start("suffix")] if match["suffix"] else \
            match.group(0)
        status, metadata = self._call("GET", f"{model_path}/metadata", None)
        if status != 200:
            raise invalid(f"the backend's metadata: {status} {metadata}")
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
