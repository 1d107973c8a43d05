"""Prometheus metrics of the embedded server: known traffic over REST and gRPC, then a
scrape of /monitoring/prometheus/metrics read with prometheus-client's own parser;
the TF Serving backends get a monitoring config with the same path."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request

import grpc
import pytest
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from components.contract import DEFAULT_SIGNATURE, IMAGES_INPUT, SAVED_MODEL_FILE
from serving import model_server
from serving.limits import Limits
from serving.metrics import METRICS_PATH
from serving.model_store import ModelStore
from serving import rest_server
from serving.metrics import ServerMetrics
from serving.rest_server import RestApi
from tests.support.data import png_images
from tests.support.pushing import copy_version
from tests.support.server_process import EmbeddedServerProcess
from tests.support.warmup_file import write_warmup_file


def samples(exposition: str, name: str) -> dict:
    """{frozenset of label items: value} of the samples called `name`."""
    return {frozenset(sample.labels.items()): sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples if sample.name == name}


def _call(url, body=None):
    request = urllib.request.Request(url, data=None if body is None else json.dumps(
        body).encode(), method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_each_server_counts_into_its_own_registry(tmp_path):
    apis = [RestApi(ModelStore("cifar10", str(tmp_path), log=lambda message: None),
                    Limits()) for _ in range(2)]
    assert apis[0].handle("GET", "/v1/models/cifar10", None)[0] == 404
    assert apis[0].handle("GET", "/v1/models/somebody-elses-model", None)[0] == 404
    counts = [samples(api.metrics.exposition().decode(), "serving_requests_total")
              for api in apis]
    status = {"version": "", "signature": "", "api": "rest", "method": "status",
              "code": "NOT_FOUND"}
    assert counts[0] == {frozenset({**status, "model": "cifar10"}.items()): 1.0,
                         # an unknown model's name is not a label value
                         frozenset({**status, "model": ""}.items()): 1.0}
    assert counts[1] == {}


def test_tf_serving_gets_a_monitoring_config_with_the_same_path(tmp_path):
    settings = model_server.ServerSettings(model_base_path=str(tmp_path), model_name="cifar10",
                                           rest_port=8501, grpc_port=8500)
    config_dir = tmp_path / "config"
    model_server.write_config_files(settings, str(config_dir), "tensorflow_model_server")
    text = (config_dir / model_server.MONITORING_CONFIG_FILE).read_text()
    # MonitoringConfig's proto is not in tensorflow-serving-api: parsed as the same
    # text-format fields TF Serving reads.
    assert text.split() == ["prometheus_config", "{", "enable:", "true", "path:",
                            f'"{METRICS_PATH}"', "}"]
    command = model_server.server_command(settings, str(config_dir), "tensorflow_model_server")
    assert (f"--monitoring_config_file={config_dir}/{model_server.MONITORING_CONFIG_FILE}"
            in command)


def test_requests_refused_before_routing_are_counted(tmp_path):
    store = ModelStore("cifar10", str(tmp_path), log=lambda message: None)
    metrics = ServerMetrics(store)
    server = rest_server.start(store, "127.0.0.1", 0,
                               Limits(max_request_bytes=100, max_connections=1),
                               metrics=metrics)
    url = f"http://127.0.0.1:{server.server_port}/v1/models/cifar10:predict"
    try:
        status, body = _call(url, {"instances": ["x" * 200]})
        assert status == 413 and b"over the limit of 100" in body
        time.sleep(0.5)  # the server closes that connection and frees its slot
        with socket.create_connection(("127.0.0.1", server.server_port)):
            # That idle connection holds the only slot: the next one is refused.
            assert _call(url, {"instances": []})[0] == 503
    finally:
        server.shutdown()
    refused = {"model": "", "version": "", "signature": "", "api": "rest", "method": ""}
    assert samples(metrics.exposition().decode(), "serving_requests_total") == {
        frozenset({**refused, "code": "RESOURCE_EXHAUSTED"}.items()): 1.0,
        frozenset({**refused, "code": "UNAVAILABLE"}.items()): 1.0}


def test_known_traffic_is_counted_exactly(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    base_path = tmp_path / "cifar10"
    # Warmup requests run through the model at load; they are not client requests.
    write_warmup_file(copy_version(version_dir, str(base_path), 1), [png_images(2)] * 3)
    server = EmbeddedServerProcess(str(base_path))
    assert "3 warmup requests replayed" in "".join(server.lines)
    model_url = f"{server.rest_url}/v1/models/cifar10"
    image = {"b64": base64.b64encode(png_images(1)[0]).decode()}
    channel = grpc.insecure_channel(server.grpc_target)
    try:
        for _ in range(3):
            assert _call(f"{model_url}:predict", {"instances": [image]})[0] == 200
        assert _call(f"{model_url}:predict",
                     {"instances": [{"b64": base64.b64encode(b"not a png").decode()}]})[0] == 400
        assert _call(model_url)[0] == 200
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "cifar10"
        request.inputs[IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(png_images(2)))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(2):
            stub.Predict(request, timeout=60)
        request.model_spec.version.value = 99
        with pytest.raises(grpc.RpcError):
            stub.Predict(request, timeout=60)
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = "cifar10"
        model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(status_request,
                                                                        timeout=60)
        # A version that fails to load: counted, reported, and version 1 keeps serving.
        corrupt = copy_version(version_dir, str(base_path), 2)
        with open(os.path.join(corrupt, SAVED_MODEL_FILE), "wb") as pb_file:
            pb_file.write(b"truncated")
        deadline = time.monotonic() + 60
        while "failed to load" not in "".join(server.lines):
            assert time.monotonic() < deadline, "".join(server.lines)
            time.sleep(0.2)
        status, scraped = _call(f"{server.rest_url}{METRICS_PATH}")
        assert status == 200
        exposition = scraped.decode()
    finally:
        channel.close()
        server.stop()
    base = {"model": "cifar10", "version": "1", "signature": DEFAULT_SIGNATURE}
    expected = {
        frozenset({**base, "api": "rest", "method": "predict", "code": "OK"}.items()): 3.0,
        frozenset({**base, "api": "rest", "method": "predict",
                   "code": "INVALID_ARGUMENT"}.items()): 1.0,
        frozenset({**base, "api": "rest", "method": "status", "code": "OK",
                   "version": "", "signature": ""}.items()): 1.0,
        frozenset({**base, "api": "grpc", "method": "predict", "code": "OK"}.items()): 2.0,
        frozenset({**base, "api": "grpc", "method": "predict", "code": "NOT_FOUND",
                   "version": "", "signature": ""}.items()): 1.0,
        frozenset({**base, "api": "grpc", "method": "status", "code": "OK",
                   "version": "", "signature": ""}.items()): 1.0,
    }
    assert samples(exposition, "serving_requests_total") == expected
    counts = samples(exposition, "serving_request_latency_seconds_count")
    assert counts[frozenset({"model": "cifar10", "api": "rest", "method": "predict"}.items())] \
        == 4.0
    assert counts[frozenset({"model": "cifar10", "api": "grpc", "method": "predict"}.items())] \
        == 3.0
    buckets = samples(exposition, "serving_request_latency_seconds_bucket")
    rest_predict = sorted((float(dict(key)["le"]), value) for key, value in buckets.items()
                          if dict(key)["api"] == "rest" and dict(key)["method"] == "predict")
    assert rest_predict[-1] == (float("inf"), 4.0)
    assert [value for _, value in rest_predict] == sorted(value for _, value in rest_predict)
    assert samples(exposition, "serving_model_versions") == {
        frozenset({"model": "cifar10", "version": "1", "state": "AVAILABLE"}.items()): 1.0,
        frozenset({"model": "cifar10", "version": "2", "state": "END"}.items()): 1.0}
    assert samples(exposition, "serving_model_load_failures_total") == {
        frozenset({"model": "cifar10", "version": "2"}.items()): 1.0}
