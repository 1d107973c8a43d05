"""Version labels, canary and rollback: `python -m serving label|rollback|versions` over
a model base path, the model config TF Serving reads (parsed back with its own protos),
and the embedded server answering by label over REST and gRPC while the labels move
under a client loop."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from components.contract import (CANARY_LABEL, IMAGES_INPUT, MODEL_CONFIG_FILE,
                                 SAVED_MODEL_FILE, STABLE_HISTORY_FILE, STABLE_LABEL)
from serving import labels, model_server, rest_server
from serving.model_store import ModelStore
from tests.support.data import REPO_ROOT, png_images
from tests.support.pushing import copy_version
from tests.support.server_process import EmbeddedServerProcess, free_port


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "serving", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _label(base_path, *args, **kwargs):
    result = _cli(*args, "--model-base-path", str(base_path), **kwargs)
    return result


def _fake_versions(base_path, *versions):
    """Version directories the label commands accept (they only read the directory
    rule; nothing here is loaded)."""
    for version in versions:
        (base_path / str(version)).mkdir(parents=True)
        (base_path / str(version) / SAVED_MODEL_FILE).write_bytes(b"")


def _model_config(base_path):
    config = text_format.Parse((base_path / MODEL_CONFIG_FILE).read_text(),
                               model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    return model


def test_label_commands_write_tf_servings_config_and_roll_back(tmp_path):
    base_path = tmp_path / "cifar10"
    _fake_versions(base_path, 3, 5, 7)
    (base_path / "9").mkdir()  # a copy in progress: no saved_model.pb yet
    assert _label(base_path, "label", STABLE_LABEL, "3").returncode == 0
    model = _model_config(base_path)
    assert (model.name, model.base_path, model.model_platform) == (
        "cifar10", str(base_path), "tensorflow")
    assert list(model.model_version_policy.specific.versions) == [3]
    assert dict(model.version_labels) == {STABLE_LABEL: 3}
    for label, version in ((STABLE_LABEL, 5), (CANARY_LABEL, 7)):
        result = _label(base_path, "label", label, str(version))
        assert result.returncode == 0 and f"{label} -> version {version}" in result.stdout
    model = _model_config(base_path)
    assert list(model.model_version_policy.specific.versions) == [5, 7]
    assert dict(model.version_labels) == {STABLE_LABEL: 5, CANARY_LABEL: 7}
    listing = _label(base_path, "versions")
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line.split()[1:] for line in listing.stdout.splitlines()[2:]}
    assert rows["7"] == ["ready", "served", "-", CANARY_LABEL]
    assert rows["5"] == ["ready", "served", "-", STABLE_LABEL]
    assert rows["3"] == ["ready", "-", "-"]
    assert rows["9"][:3] == ["no", SAVED_MODEL_FILE, "-"]
    # Promote the canary, then roll back twice: 7 -> 5 -> 3; nothing is deleted.
    assert _label(base_path, "label", STABLE_LABEL, "7").returncode == 0
    for expected in (5, 3):
        result = _label(base_path, "rollback")
        assert result.returncode == 0, result.stderr
        assert f"{STABLE_LABEL} -> version {expected}" in result.stdout
        model = _model_config(base_path)
        assert model.version_labels[STABLE_LABEL] == expected
        assert set(model.model_version_policy.specific.versions) == {expected, 7}
    result = _label(base_path, "rollback")
    assert result.returncode == 2 and "nothing earlier to roll back to" in result.stderr
    assert sorted(os.listdir(base_path)) == sorted(
        ["3", "5", "7", "9", MODEL_CONFIG_FILE, STABLE_HISTORY_FILE])


def test_bad_label_commands_are_refused_and_change_nothing(tmp_path):
    base_path = tmp_path / "cifar10"
    _fake_versions(base_path, 3)
    (base_path / "4").mkdir()
    result = _label(base_path, "label", CANARY_LABEL, "3")
    assert result.returncode == 2 and f"set '{STABLE_LABEL}' before" in result.stderr
    assert not (base_path / MODEL_CONFIG_FILE).exists()
    assert _label(base_path, "label", STABLE_LABEL, "3").returncode == 0
    before = (base_path / MODEL_CONFIG_FILE).read_text()
    for version in ("42", "4"):  # absent; half-copied
        result = _label(base_path, "label", STABLE_LABEL, version)
        assert result.returncode == 2
        assert f"version {version} of cifar10 is not under {base_path}" in result.stderr
        assert "versions there: 3" in result.stderr
    result = _label(base_path, "rollback")
    assert result.returncode == 2 and "version 3 is the first" in result.stderr
    assert _label(base_path, "label", "production", "3").returncode == 2  # not a label
    assert (base_path / MODEL_CONFIG_FILE).read_text() == before
    result = _cli("versions", "--model-base-path", str(tmp_path / "absent"))
    assert result.returncode == 2 and "not a directory" in result.stderr


def test_a_label_the_server_does_not_follow_puts_the_config_and_history_back(tmp_path):
    base_path = tmp_path / "cifar10"
    _fake_versions(base_path, 3, 5)
    # A real embedded REST server whose store never polls: it never loads a version nor
    # moves a label, as a stalled server would.
    stalled = rest_server.start(ModelStore("cifar10", str(base_path), log=lambda m: None),
                                "127.0.0.1", 0)
    url = f"http://127.0.0.1:{stalled.server_port}"
    try:
        # A first label: nothing to load first; the server never answers by it.
        result = _label(base_path, "label", STABLE_LABEL, "3", "--server", url,
                        "--timeout-seconds", "1")
        assert result.returncode == 2
        assert "still answers it with None" in result.stderr
        assert sorted(os.listdir(base_path)) == ["3", "5"]  # no config, no history
        assert _label(base_path, "label", STABLE_LABEL, "3").returncode == 0
        config, history = ((base_path / name).read_text()
                           for name in (MODEL_CONFIG_FILE, STABLE_HISTORY_FILE))
        for label in (CANARY_LABEL, STABLE_LABEL):  # no load step; a load step
            with pytest.raises(labels.LabelError, match="version 5"):
                labels.move_label(str(base_path), "cifar10", label, 5, url, timeout_s=1,
                                  log=lambda m: None)
            assert (base_path / MODEL_CONFIG_FILE).read_text() == config
            assert (base_path / STABLE_HISTORY_FILE).read_text() == history == "3\n"
    finally:
        stalled.shutdown()


def test_tf_serving_reads_the_labelled_config_and_polls_it(tmp_path):
    base_path = tmp_path / "cifar10"
    _fake_versions(base_path, 1, 2, 3)
    settings = model_server.ServerSettings(model_base_path=str(base_path),
                                           model_name="cifar10", rest_port=8501,
                                           grpc_port=8500, num_versions=2)
    config_dir = tmp_path / "config"
    model_server.write_config_files(settings, str(config_dir), "tensorflow_model_server")
    assert _model_config(base_path).model_version_policy.latest.num_versions == 2
    listing = _label(base_path, "versions")
    assert listing.stdout.startswith("Served: the newest 2 versions (no labels)")
    rows = {line.split()[0]: line.split()[2] for line in listing.stdout.splitlines()[2:]}
    assert rows == {"3": "served", "2": "served", "1": "-"}
    assert _label(base_path, "label", STABLE_LABEL, "3").returncode == 0
    # A labelled config is the operator's: starting the server again keeps it.
    model_server.write_config_files(settings, str(config_dir), "tensorflow_model_server")
    assert dict(_model_config(base_path).version_labels) == {STABLE_LABEL: 3}
    command = model_server.server_command(settings, str(config_dir), "tensorflow_model_server")
    assert {f"--model_config_file={base_path}/{MODEL_CONFIG_FILE}",
            "--model_config_file_poll_wait_seconds=1",
            "--allow_version_labels_for_unavailable_models=true"} <= set(command)
    (base_path / MODEL_CONFIG_FILE).write_text("model_config_list { config { nme: 1 } }")
    with pytest.raises(model_server.ServerConfigError, match=MODEL_CONFIG_FILE):
        model_server.write_config_files(settings, str(config_dir), "tensorflow_model_server")


# --- The embedded server, by label (slow: the pipeline's model in a server process).

def _rest(url, body=None):
    request = urllib.request.Request(url, data=None if body is None else json.dumps(
        body).encode(), method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _served_version(server, label):
    status, body = _rest(f"{server.rest_url}/v1/models/cifar10/labels/{label}/metadata")
    return int(body["model_spec"]["version"]) if status == 200 else (status, body)


def _wait_for(server, label, version, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while _served_version(server, label) != version:
        assert time.monotonic() < deadline, (
            f"{label} did not reach version {version}: {_served_version(server, label)}\n"
            + "".join(server.lines[-20:]))
        time.sleep(0.1)


def _grpc_version(stub, image, label=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "cifar10"
    if label is not None:
        request.model_spec.version_label = label
    request.inputs[IMAGES_INPUT].CopyFrom(tf.make_tensor_proto([image]))
    return stub.Predict(request, timeout=60).model_spec.version.value


def test_labels_canary_promote_and_rollback_under_a_client_loop(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    base_path = tmp_path / "models" / "cifar10"
    copy_version(version_dir, str(base_path), 1)
    assert _label(base_path, "label", STABLE_LABEL, "1").returncode == 0
    server = EmbeddedServerProcess(str(base_path))
    image = png_images(1)[0]
    body = {"instances": [{"b64": base64.b64encode(image).decode()}]}
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(server.grpc_target))
    answered, failures, stop = [], [], threading.Event()

    def client_loop(label):
        while not stop.is_set():
            status, answer = _rest(
                f"{server.rest_url}/v1/models/cifar10/labels/{label}:predict", body)
            if status == 200 and len(answer["predictions"]) == 1:
                answered.append(label)
            else:
                failures.append((label, status, answer))

    loops = [threading.Thread(target=client_loop, args=(STABLE_LABEL,)) for _ in range(3)]
    try:
        _wait_for(server, STABLE_LABEL, 1)
        for loop in loops:
            loop.start()
        assert _grpc_version(stub, image, STABLE_LABEL) == 1
        # A push while `stable` is set is not served: neither by label nor as the newest.
        copy_version(version_dir, str(base_path), 2)
        time.sleep(2)  # ten polls
        assert _grpc_version(stub, image) == 1 and _grpc_version(stub, image, STABLE_LABEL) == 1
        status, answer = _rest(f"{server.rest_url}/v1/models/cifar10/versions/2")
        assert status == 404 and "version 2" in answer["error"]
        # Canary: version 2 is loaded and answers by its label; stable stays on 1.
        assert _label(base_path, "label", CANARY_LABEL, "2").returncode == 0
        _wait_for(server, CANARY_LABEL, 2)
        assert _grpc_version(stub, image, CANARY_LABEL) == 2
        assert _grpc_version(stub, image, STABLE_LABEL) == 1
        canary_loop = threading.Thread(target=client_loop, args=(CANARY_LABEL,))
        loops.append(canary_loop)
        canary_loop.start()
        # Promote, then roll back (through the server: the version is loaded before
        # the label moves, as TF Serving needs), then promote again.
        assert _label(base_path, "label", STABLE_LABEL, "2").returncode == 0
        _wait_for(server, STABLE_LABEL, 2)
        # The status API ignores a label, as TF Serving's does: every version.
        status, answer = _rest(f"{server.rest_url}/v1/models/cifar10/labels/{STABLE_LABEL}")
        assert status == 200
        assert [s["version"] for s in answer["model_version_status"]] == ["2", "1"]
        time.sleep(1)
        rolled_back = _label(base_path, "rollback", "--server", server.rest_url)
        assert rolled_back.returncode == 0, rolled_back.stderr
        assert "Loading version 1" in rolled_back.stdout
        assert _served_version(server, STABLE_LABEL) == 1  # moved once 1 was loaded
        assert _grpc_version(stub, image, STABLE_LABEL) == 1
        assert _grpc_version(stub, image, CANARY_LABEL) == 2
        # A label the config does not have, over both APIs, named in the refusal.
        status, answer = _rest(f"{server.rest_url}/v1/models/cifar10/labels/beta:predict",
                               body)
        assert status == 400
        assert answer["error"] == "Unrecognized servable version label: beta"
        with pytest.raises(grpc.RpcError) as refused:
            _grpc_version(stub, image, "beta")
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "Unrecognized servable version label: beta" in refused.value.details()
        listing = _label(base_path, "versions", "--server", server.rest_url)
        rows = {line.split()[0]: line.split()[1:] for line in listing.stdout.splitlines()[2:]}
        assert rows["1"] == ["ready", "served", "AVAILABLE", STABLE_LABEL]
        assert rows["2"] == ["ready", "served", "AVAILABLE", CANARY_LABEL]
        time.sleep(1)
    finally:
        stop.set()
        for loop in loops:
            loop.join()
        server.stop()
    assert failures == []
    assert answered.count(STABLE_LABEL) > 10 and answered.count(CANARY_LABEL) > 0


# --- TF Serving itself (when installed): a label in use moves in two steps.

@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="tensorflow_model_server is not on PATH (TF Serving is not "
                           "installable from the package indexes here)")
def test_tf_serving_moves_a_label_in_use_in_two_steps_and_rolls_back(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    base_path = tmp_path / "models" / "cifar10"
    copy_version(version_dir, str(base_path), 1)
    assert _label(base_path, "label", STABLE_LABEL, "1").returncode == 0
    settings = model_server.ServerSettings(model_base_path=str(base_path),
                                           model_name="cifar10", rest_port=free_port(),
                                           grpc_port=free_port(), host="127.0.0.1")
    config_dir = str(tmp_path / "config")
    model_server.write_config_files(settings, config_dir, "tensorflow_model_server")
    log_path = tmp_path / "tensorflow_model_server.log"
    with open(log_path, "w") as log_file:  # a file: a pipe nobody reads would fill up
        server = subprocess.Popen(
            model_server.server_command(settings, config_dir, "tensorflow_model_server"),
            stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{settings.rest_port}"
    try:
        deadline = time.monotonic() + 120
        while labels.server_label_version(url, "cifar10", STABLE_LABEL) != 1:
            assert server.poll() is None and time.monotonic() < deadline, (
                f"TF Serving did not answer {STABLE_LABEL} with version 1:\n"
                + log_path.read_text()[-3000:])
            time.sleep(0.5)
        copy_version(version_dir, str(base_path), 2)
        # TF Serving refuses a config moving `stable` onto a version it has not loaded:
        # the command loads 2 first, then moves the label once 2 is AVAILABLE.
        moved = _label(base_path, "label", STABLE_LABEL, "2", "--server", url)
        assert moved.returncode == 0, moved.stderr
        assert "Loading version 2" in moved.stdout
        assert labels.server_label_version(url, "cifar10", STABLE_LABEL) == 2
        assert labels.server_version_states(url, "cifar10")[2][0] == "AVAILABLE"
        rolled_back = _label(base_path, "rollback", "--server", url)
        assert rolled_back.returncode == 0, rolled_back.stderr
        assert labels.server_label_version(url, "cifar10", STABLE_LABEL) == 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
