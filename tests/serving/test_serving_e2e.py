"""The full loop: the pipeline pushed a model; a real server process on 127.0.0.1
serves it; REST and gRPC predictions equal the in-process SavedModel's. A second push
is served without a restart and without a failed request."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from components.contract import (CLASS_IDS_OUTPUT, CLASS_NAMES_OUTPUT, DEFAULT_SIGNATURE,
                                 IMAGES_INPUT, PROBABILITIES_OUTPUT)
from serving.client import connect
from tests.support.console import library_lines
from tests.support.data import REPO_ROOT, png_images
from tests.support.pushing import push
from tests.support.server_process import EmbeddedServerProcess, free_port

pytestmark = pytest.mark.slow  # the pipeline's model behind a server process


@pytest.fixture(scope="module")
def in_process(pushed_model):
    _, _, version_dir = pushed_model
    images = png_images(16)
    outputs = tf.saved_model.load(version_dir).signatures[DEFAULT_SIGNATURE](
        **{IMAGES_INPUT: tf.constant(images)})
    return images, {key: value.numpy() for key, value in outputs.items()}


@pytest.mark.parametrize("use_grpc", [False, True], ids=["rest", "grpc"])
def test_served_predictions_equal_the_in_process_saved_model(served, in_process, use_grpc):
    images, expected = in_process
    client = connect(served.grpc_target if use_grpc else served.rest_url, "cifar10",
                     grpc=use_grpc)
    predictions = client.predict(images)
    assert [p.class_id for p in predictions] == expected[CLASS_IDS_OUTPUT].tolist()
    assert [p.class_name for p in predictions] == [
        name.decode() for name in expected[CLASS_NAMES_OUTPUT]]
    np.testing.assert_allclose([p.probabilities for p in predictions],
                               expected[PROBABILITIES_OUTPUT], rtol=1e-5, atol=1e-6)


def test_predict_command_prints_class_name_and_probability(served, in_process, tmp_path):
    images, expected = in_process
    paths = []
    for index, image in enumerate(images[:3]):
        paths.append(str(tmp_path / f"image{index}.png"))
        with open(paths[-1], "wb") as image_file:
            image_file.write(image)
    for server_args in (["--server", served.rest_url],
                        ["--server", served.grpc_target, "--grpc"]):
        result = subprocess.run([sys.executable, "-m", "serving", "predict", *server_args,
                                 *paths], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr
        rows = result.stdout.strip().splitlines()[1:]
        for row, class_id, name, probabilities in zip(
                rows, expected[CLASS_IDS_OUTPUT], expected[CLASS_NAMES_OUTPUT],
                expected[PROBABILITIES_OUTPUT]):
            path, printed_id, printed_name, printed_probability = row.split()
            assert (int(printed_id), printed_name) == (class_id, name.decode())
            assert float(printed_probability) == pytest.approx(
                probabilities[class_id], abs=1e-4)


def test_a_second_push_is_served_without_restart_or_failed_request(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    base_path = tmp_path / "models" / "cifar10"
    base_path.mkdir(parents=True)
    # An older version number than any the Pusher writes (unix time).
    shutil.copytree(version_dir, base_path / "1")
    server = EmbeddedServerProcess(str(base_path))
    image = png_images(1)[0]
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(server.grpc_target))
    rest_client = connect(server.rest_url, "cifar10")
    served_versions, failures = [], []
    stop = threading.Event()

    def grpc_loop():
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "cifar10"
        request.inputs[IMAGES_INPUT].CopyFrom(tf.make_tensor_proto([image]))
        while not stop.is_set():
            try:
                served_versions.append(stub.Predict(request, timeout=60).model_spec.version.value)
            except Exception as error:  # any failed request fails the test
                failures.append(f"gRPC: {error}")

    def rest_loop():
        while not stop.is_set():
            try:
                rest_client.predict([image])
            except Exception as error:
                failures.append(f"REST: {error}")

    loops = [threading.Thread(target=grpc_loop), threading.Thread(target=rest_loop)]
    try:
        for loop in loops:
            loop.start()
        time.sleep(2)
        model_artifact = tmp_path / "model"
        shutil.copytree(version_dir, model_artifact / "Format-Serving")
        # TFX's own Pusher executor (saved_model.pb written last), as a pipeline run
        # with a newly blessed model pushes.
        from tfx.components.pusher import executor as pusher_executor
        new_version = int(push(pusher_executor.Executor, str(model_artifact), str(base_path),
                               str(tmp_path / "push"), "second").get_string_custom_property(
                                   "pushed_version"))
        assert new_version > 1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not served_versions
                                               or served_versions[-1] != new_version):
            time.sleep(0.2)
        time.sleep(1)
    finally:
        stop.set()
        for loop in loops:
            loop.join()
        server.stop()
    assert failures == []
    assert served_versions[0] == 1 and served_versions[-1] == new_version
    switch = served_versions.index(new_version)
    assert set(served_versions[:switch]) == {1} and set(served_versions[switch:]) == {new_version}
    log = "".join(server.lines)
    assert f"Serving cifar10 version {new_version}" in log
    assert "Unloaded cifar10 version 1" in log
    # The server's console: its own lines, no TensorFlow start-up or deprecation noise.
    assert server.lines[0].startswith("Backend: embedded")
    assert library_lines(server.lines) == []


@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="no tensorflow_model_server on PATH (TF Serving is not installable "
                           "from any package index here)")
def test_real_tf_serving_answers_like_the_embedded_server(pushed_model, in_process, tmp_path):
    ports = [free_port(), free_port()]
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "serve", "--backend", "tensorflow_model_server",
         "--model-base-path", pushed_model[0], "--rest-port", str(ports[0]),
         "--grpc-port", str(ports[1]), "--config-dir", str(tmp_path / "config")],
        cwd=REPO_ROOT)
    try:
        images, expected = in_process
        deadline = time.monotonic() + 120
        while True:
            try:
                predictions = connect(f"http://127.0.0.1:{ports[0]}", "cifar10").predict(images)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        assert [p.class_id for p in predictions] == expected[CLASS_IDS_OUTPUT].tolist()
        grpc_predictions = connect(f"127.0.0.1:{ports[1]}", "cifar10", grpc=True).predict(images)
        assert [p.class_id for p in grpc_predictions] == expected[CLASS_IDS_OUTPUT].tolist()
    finally:
        process.terminate()
        process.wait(timeout=30)
