"""TF Serving's REST API on the embedded server (a real process on 127.0.0.1): status,
metadata, predict in row and columnar form, classify, and bad requests answered with
a 4xx `{"error": ...}` while the server keeps serving."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from components.contract import (CLASS_IDS_OUTPUT, CLASS_NAMES, CLASS_NAMES_OUTPUT,
                                 DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE, IMAGES_INPUT, IMAGE_KEY,
                                 PIXELS_SIGNATURE, PROBABILITIES_OUTPUT)
from tests.support.data import png_images


def _call(url: str, body=None, method=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method or (
        "POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode()}


@pytest.fixture(scope="module")
def model_url(served):
    return f"{served.rest_url}/v1/models/cifar10"


def test_status_and_metadata(served, pushed_model, model_url):
    _, version, _ = pushed_model
    status, body = _call(model_url)
    assert status == 200
    assert body == {"model_version_status": [{"version": str(version), "state": "AVAILABLE",
                                              "status": {"error_code": "OK",
                                                         "error_message": ""}}]}
    status, body = _call(f"{model_url}/versions/{version}/metadata")
    assert status == 200 and body["model_spec"]["version"] == str(version)
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) >= {DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE, PIXELS_SIGNATURE}
    assert signatures[DEFAULT_SIGNATURE]["inputs"][IMAGES_INPUT]["dtype"] == "DT_STRING"


def test_row_and_columnar_requests_give_the_same_predictions(model_url):
    images = png_images(3)
    status, rows = _call(f"{model_url}:predict",
                         {"instances": [_b64(image) for image in images]})
    assert status == 200 and len(rows["predictions"]) == 3
    status, named_rows = _call(f"{model_url}:predict",
                               {"instances": [{IMAGES_INPUT: _b64(image)} for image in images]})
    assert status == 200 and named_rows == rows
    status, columns = _call(f"{model_url}:predict",
                            {"inputs": {IMAGES_INPUT: [_b64(image) for image in images]}})
    assert status == 200
    assert columns["outputs"][CLASS_IDS_OUTPUT] == [row[CLASS_IDS_OUTPUT] for row in rows["predictions"]]
    assert columns["outputs"][CLASS_NAMES_OUTPUT] == [CLASS_NAMES[row[CLASS_IDS_OUTPUT]]
                                                 for row in rows["predictions"]]
    np.testing.assert_allclose(columns["outputs"][PROBABILITIES_OUTPUT],
                               [row[PROBABILITIES_OUTPUT] for row in rows["predictions"]])


def test_pixels_signature_and_classify_agree_with_the_default_one(model_url):
    import tensorflow as tf
    images = png_images(2)
    _, default = _call(f"{model_url}:predict", {"instances": [_b64(i) for i in images]})
    pixels = [tf.io.decode_png(image).numpy().tolist() for image in images]
    status, by_pixels = _call(f"{model_url}:predict",
                              {"signature_name": PIXELS_SIGNATURE, "instances": pixels})
    assert status == 200 and by_pixels == default
    status, classified = _call(f"{model_url}:classify",
                               {"examples": [{IMAGE_KEY: _b64(image)} for image in images]})
    assert status == 200
    for scores, row in zip(classified["result"], default["predictions"]):
        assert [label for label, _ in scores] == list(CLASS_NAMES)
        np.testing.assert_allclose([score for _, score in scores], row[PROBABILITIES_OUTPUT],
                                   rtol=1e-6)


@pytest.mark.parametrize("path_suffix, body, status, message", [
    (":predict", {"instances": [_b64(b"not an image")]}, 400, "Unknown image file format"),
    (":predict", "wrong-size", 400, "not compatible with expected shape [32,32,3]"),
    (":predict", {"instances": []}, 400, "\"instances\" is empty"),
    (":predict", b"{\"instances\": [", 400, "not valid JSON"),
    (":predict", {"instances": ["x"], "inputs": ["x"]}, 400, "exactly one of"),
    (":predict", {"instances": [_b64(b"x")], "signature_name": "nope"}, 400,
     "\"nope\" not found"),
    (":predict", {"instances": [1.5]}, 400, "cannot be read as a string tensor"),
    (":predict", {"instances": [{"b64": "%%%"}]}, 400, "not valid base64"),
    ("/versions/7:predict", {"instances": [_b64(b"x")]}, 404, "Specific(cifar10, 7)"),
    (":classify", {"examples": []}, 400, "non-empty list"),
    (":regress", {"examples": [{IMAGE_KEY: "x"}]}, 400, "no regression signature"),
])
def test_bad_requests_get_a_4xx_error_and_the_server_keeps_serving(
        model_url, path_suffix, body, status, message):
    if body == "wrong-size":
        from components.data.example_gen import encode_png
        body = {"instances": [_b64(encode_png(np.zeros((64, 64, 3), np.uint8)))]}
    got_status, got = _call(f"{model_url}{path_suffix}", body)
    assert got_status == status and set(got) == {"error"}
    assert message in got["error"]
    good_status, good = _call(f"{model_url}:predict", {"instances": [_b64(png_images(1)[0])]})
    assert good_status == 200 and len(good["predictions"]) == 1


def test_unknown_model_and_route_are_404(served):
    status, body = _call(f"{served.rest_url}/v1/models/other:predict", {"instances": ["x"]})
    assert status == 404 and body["error"] == "Servable not found for request: Latest(other)"
    status, body = _call(f"{served.rest_url}/v2/anything")
    assert status == 404 and "error" in body


def test_a_body_over_the_size_limit_is_refused_with_413(served, model_url):
    # The server was started with the default 8 MiB limit.
    oversized = b"{\"instances\": [\"" + b"a" * (9 * 1024 * 1024) + b"\"]}"
    try:
        status, body = _call(f"{model_url}:predict", oversized)
    except (ConnectionError, urllib.error.URLError):
        pytest.fail("the server closed the connection without answering")
    assert status == 413 and "over the limit" in body["error"]
    good_status, _ = _call(f"{model_url}:predict", {"instances": [_b64(png_images(1)[0])]})
    assert good_status == 200
