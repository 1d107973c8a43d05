"""Sampled request logging (serving/request_log.py): a real server's records read back
as TF Serving's PredictionLog protos, the sampling rate, the size cap, and a log that
cannot be written failing no request."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components.contract import (CLASS_NAMES, DEFAULT_SIGNATURE, IMAGE_KEY, IMAGES_INPUT,
                                 request_log_files)
from serving import request_log
from serving.client import ServingRequestError, connect
from serving.limits import Limits
from serving.metrics import METRICS_PATH, ServerMetrics
from serving.model_store import ModelStore
from serving.quiet_import import HARMLESS_IMPORT_LINES
from serving.rest_server import RestApi
from tests.support.data import REPO_ROOT, png_images
from tests.support.server_process import EmbeddedServerProcess, ProxyProcess, user_environment


def _records(directory: str) -> list:
    records = []
    for name in request_log_files(directory):
        for serialized in tf.data.TFRecordDataset(os.path.join(directory, name)):
            records.append(prediction_log_pb2.PredictionLog.FromString(serialized.numpy()))
    return records


def _small_record(payload_bytes: int = 100) -> prediction_log_pb2.PredictionLog:
    record = prediction_log_pb2.PredictionLog()
    record.predict_log.request.model_spec.name = "cifar10"
    record.predict_log.request.inputs[IMAGES_INPUT].CopyFrom(
        tf.make_tensor_proto([b"x" * payload_bytes], dtype=tf.string))
    return record


def _outcomes(metrics_text: str) -> dict:
    found = {}
    for line in metrics_text.splitlines():
        if line.startswith("serving_request_log_records_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found


def test_a_server_and_the_proxy_in_front_of_it_log_every_request_alike(pushed_model,
                                                                      tmp_path):
    """At rate 1 the server writes one PredictionLog per answered request (REST and
    gRPC), with the version, signature, time and the bytes sent; through the proxy,
    requests reach the server unchanged and the proxy's records equal the server's
    own, the time aside."""
    base_path, version, _ = pushed_model
    server_dir, proxy_dir = str(tmp_path / "server"), str(tmp_path / "proxy")
    server = EmbeddedServerProcess(base_path, extra_args=(
        "--log-requests", server_dir, "--log-sampling-rate", "1"))
    proxy = ProxyProcess(server.rest_url, proxy_dir)
    images = png_images(5)
    started = time.time()
    try:
        rest, grpc = connect(server.rest_url, "cifar10"), connect(server.grpc_target,
                                                                  "cifar10", grpc=True)
        for index in range(3):
            rest.predict(images[index:index + 2])
        for index in range(2):
            grpc.predict([images[4 - index]])
        grpc.close()
        with pytest.raises(ServingRequestError):  # refused: not logged
            rest.predict([b"not an image"])
        # Through the proxy: predict, classify, and a request the server refuses.
        through = connect(proxy.url, "cifar10")
        assert through.predict(images[:2]) == rest.predict(images[:2])
        examples = {"examples": [{IMAGE_KEY: {"b64": base64.b64encode(images[0]).decode()}}]}
        classify = urllib.request.Request(f"{proxy.url}/v1/models/cifar10:classify",
                                          data=json.dumps(examples).encode())
        with urllib.request.urlopen(classify) as answer:
            assert len(json.load(answer)["result"][0]) == len(CLASS_NAMES)
        with pytest.raises(ServingRequestError) as refused:  # the server's own error
            through.predict([b"not an image"])
        assert refused.value.status == 400 and "image" in refused.value.message
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(server.rest_url + METRICS_PATH) as answer:
                outcomes = _outcomes(answer.read().decode())
            if outcomes.get(request_log.WRITTEN) == 8 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        proxy.stop()
        server.stop()
    assert outcomes == {request_log.WRITTEN: 8, request_log.DROPPED_QUEUE_FULL: 0,
                        request_log.DROPPED_TOO_LARGE: 0, request_log.FAILED: 0}
    assert any("Logging 100% of the answered requests" in line for line in server.lines)
    # TensorFlow's start-up lines stay out of the server's console with logging on too.
    assert not [line for line in server.lines
                if any(harmless in line for harmless in HARMLESS_IMPORT_LINES)]

    records = _records(server_dir)
    assert len(records) == 8
    for record in records:
        metadata = record.log_metadata
        assert metadata.model_spec.name == "cifar10"
        assert metadata.model_spec.version.value == version
        assert metadata.sampling_config.sampling_rate == 1
        assert started - 1 <= metadata.timestamp_secs <= time.time() + 1
    direct = records[:5]
    for record in direct:
        assert record.log_metadata.model_spec.signature_name == DEFAULT_SIGNATURE
        assert record.predict_log.response.outputs  # the answer is kept with it
    # The bytes each client sent, REST's base64 decoded, in the order answered.
    sent = [tf.make_ndarray(record.predict_log.request.inputs[IMAGES_INPUT]).tolist()
            for record in direct]
    assert sent == [images[0:2], images[1:3], images[2:4], [images[4]], [images[3]]]

    proxy_records = _records(proxy_dir)
    assert len(proxy_records) == 2
    # The server's records of the proxied requests (records[6] is the direct one the
    # proxied predict was compared with).
    behind = [records[5], records[7]]
    for record in behind + proxy_records:
        record.log_metadata.ClearField("timestamp_secs")
    assert proxy_records == behind
    assert proxy_records[1].WhichOneof("log_type") == "classify_log"


def test_about_the_sampling_rate_of_requests_is_logged(tmp_path):
    log = request_log.RequestLog(str(tmp_path), 0.1, 2**20)
    for _ in range(1000):
        log.offer(_small_record)
    log.close()
    logged = len(_records(str(tmp_path)))
    # Binomial(1000, 0.1): mean 100, standard deviation 9.5; five of them either side.
    assert 52 <= logged <= 148, logged
    assert log.records.labels(request_log.WRITTEN)._value.get() == logged


def test_the_log_directory_stays_under_its_cap(tmp_path):
    cap = 64 * 1024
    log = request_log.RequestLog(str(tmp_path), 1.0, cap)
    first_file = None
    for index in range(200):
        log.offer(lambda: _small_record(1000))
        if first_file is None and request_log_files(str(tmp_path)):
            first_file = request_log_files(str(tmp_path))[0]
        time.sleep(0.001)
    log.close()
    files = request_log_files(str(tmp_path))
    total = sum(os.path.getsize(tmp_path / name) for name in files)
    assert total <= cap and len(files) >= 3
    assert first_file not in files  # the oldest went first
    assert 0 < len(_records(str(tmp_path))) < 200
    # A record larger than a file is dropped and counted, not written.
    log = request_log.RequestLog(str(tmp_path), 1.0, cap)
    log.offer(lambda: _small_record(cap))
    log.close()
    assert log.records.labels(request_log.DROPPED_TOO_LARGE)._value.get() == 1


def test_a_log_that_cannot_be_written_fails_no_request(pushed_model, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("the log directory cannot be made under a file")
    store = ModelStore("cifar10", pushed_model[0], log=lambda message: None)
    store.poll_once()
    metrics = ServerMetrics(store)
    printed = []
    log = request_log.RequestLog(str(blocker / "requests"), 1.0, 2**20, metrics.registry,
                                 printed.append)
    api = RestApi(store, Limits(), metrics=metrics, request_log=log)
    body = json.dumps({"instances": [{"b64": base64.b64encode(png_images(1)[0]).decode()}]}
                      ).encode()
    for _ in range(3):
        status, answer = api.handle("POST", "/v1/models/cifar10:predict", body)
        assert status == 200, answer
    log.close()
    assert log.records.labels(request_log.FAILED)._value.get() == 3
    assert log.records.labels(request_log.WRITTEN)._value.get() == 0
    assert len(printed) == 1 and str(blocker) in printed[0]
    assert 'serving_request_log_records_total{outcome="failed"} 3.0' in \
        metrics.exposition().decode()


# Run in a child process: a file size limit (RLIMIT_FSIZE) holds for the whole process.
# Past it, write() writes what fits and then fails with EFBIG, as on a full disk.
_FULL_DISK = """
import json, resource, signal, sys, time
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not death, past the limit
from tensorflow_serving.apis import prediction_log_pb2
from serving import request_log

log_dir = sys.argv[1]
printed, offered = [], 0
log = request_log.RequestLog(log_dir, 1.0, 2**20, log=printed.append)

def record():
    made = prediction_log_pb2.PredictionLog()
    made.predict_log.request.inputs["images"].string_val.append(b"x" * 1000)
    return made

def phase(file_size_limit, records):
    global offered
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, hard))
    for _ in range(records):
        log.offer(record)
    offered += records
    count = lambda outcome: log.records.labels(outcome)._value.get()
    while count(request_log.WRITTEN) + count(request_log.FAILED) < offered:
        time.sleep(0.01)
    return {"written": count(request_log.WRITTEN), "failed": count(request_log.FAILED),
            "files": sorted(request_log.request_log_files(log_dir))}

phases = [phase(500, 5), phase(10_000, 15), phase(resource.RLIM_INFINITY, 5)]
log.close()
print(json.dumps({"phases": phases, "printed": printed}))
"""


def test_a_full_disk_leaves_no_empty_file_no_torn_record_and_logging_resumes(tmp_path):
    """Under a file size limit smaller than a record, no file is left behind; under one
    that a file reaches, the record cut short is cut off; once the limit is lifted, the
    same file takes new records. Every record counted written is on disk, whole; the
    first failure and the recovery are printed once each time."""
    log_dir = tmp_path / "requests"
    finished = subprocess.run([sys.executable, "-c", _FULL_DISK, str(log_dir)],
                              cwd=REPO_ROOT, env=user_environment(), capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    none_fit, some_fit, unlimited = result["phases"]
    assert none_fit == {"written": 0, "failed": 5, "files": []}
    assert 0 < some_fit["written"] < 15 and some_fit["failed"] == 5 + 15 - some_fit["written"]
    assert len(some_fit["files"]) == 1
    assert unlimited["written"] == some_fit["written"] + 5
    assert unlimited["failed"] == some_fit["failed"] and unlimited["files"] == some_fit["files"]
    assert len(_records(str(log_dir))) == unlimited["written"]  # no DataLossError
    printed = result["printed"]
    assert len(printed) == 4, printed
    assert "cannot write to" in printed[0] and "File too large" in printed[0]
    assert "writing to" in printed[1] and "again (5 records could not be written)" in printed[1]
    assert "cannot write to" in printed[2]
    assert f"again ({int(some_fit['failed']) - 5} records" in printed[3]
