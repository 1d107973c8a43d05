"""`python -m pipeline monitor` on traffic a logging proxy in front of a real server
recorded: traffic drawn like the training data finds no drift; traffic whose images are
all one and the same, or inverted, finds it, names it and exits 4; what is served does
not change; bad input exits 2 with the input named."""

from __future__ import annotations

import base64
import importlib
import json
import os
import urllib.request

import numpy as np
import pytest

from components.contract import CLASS_NAMES, IMAGE_KEY, ready_versions
from components.data.example_gen import encode_png
from pipeline import monitor
from pipeline.cli.arguments import Exit
from serving.client import connect
from tests.support.data import random_batch
from tests.support.server_process import ProxyProcess

cli = importlib.import_module("pipeline.__main__")
IMAGES = 200
BATCH = 20


def _log_traffic(served, log_dir: str, images: list) -> None:
    """Sends `images` through a logging proxy in front of `served`: predict requests,
    and the last batch as a classify request."""
    proxy = ProxyProcess(served.rest_url, log_dir)
    try:
        client = connect(proxy.url, "cifar10")
        for start in range(0, len(images) - BATCH, BATCH):
            client.predict(images[start:start + BATCH])
        examples = [{IMAGE_KEY: {"b64": base64.b64encode(image).decode()}}
                    for image in images[-BATCH:]]
        classify = urllib.request.Request(f"{proxy.url}/v1/models/cifar10:classify",
                                          data=json.dumps({"examples": examples}).encode())
        with urllib.request.urlopen(classify) as answer:
            assert len(json.load(answer)["result"]) == BATCH
    finally:
        assert proxy.stop() == 0


def _monitor(config, log_dir: str, capsys, *extra) -> tuple:
    status = cli.main(["monitor", "--profile", config.profile, "--output-dir",
                       config.output_dir, "--requests", log_dir, *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def traffic(pipeline_run, served, tmp_path_factory):
    """Request logs of three kinds of traffic to the smoke run's served model."""
    root = tmp_path_factory.mktemp("traffic")
    # The generator the smoke run's data came from, with a seed of its own.
    pixels = random_batch(IMAGES, seed=77)[0]
    kinds = {"like_training": [encode_png(image) for image in pixels],
             "one_image": [encode_png(pixels[0])] * IMAGES,
             "inverted": [encode_png(255 - image) for image in pixels]}
    for kind, images in kinds.items():
        _log_traffic(served, str(root / kind), images)
    return {kind: str(root / kind) for kind in kinds}


def _summary(out: str) -> dict:
    report = out.strip().splitlines()[-1].removeprefix("Report: ")
    with open(os.path.join(os.path.dirname(report), monitor.SUMMARY_FILE)) as summary_file:
        return json.load(summary_file)


def test_traffic_like_the_training_data_shows_no_drift(pipeline_run, pushed_model, traffic,
                                                       capsys):
    config, _ = pipeline_run
    base_path, version, _ = pushed_model
    served_before = {number: os.stat(os.path.join(path, "saved_model.pb")).st_mtime_ns
                     for number, path in ready_versions(base_path).items()}
    status, out, _ = _monitor(config, traffic["like_training"], capsys)
    assert status == 0, out
    assert "No drift found" in out
    summary = _summary(out)
    assert summary["version"] == version and summary["judged"]
    assert summary["images"] == IMAGES and summary["records"] == IMAGES // BATCH
    assert summary["signatures"] == {"serving_default": IMAGES - BATCH,
                                     "serving_examples": BATCH}
    assert summary["anomalies"] == []
    checks = {check["check"]: check for check in summary["checks"]}
    assert set(checks) == {"image format", "declared size", "pixel mean",
                           "pixel standard deviation", "predicted class", "top-1 confidence"}
    # TFDV's L-infinity distance is the largest move of one class's share, computed
    # here from the counts the page draws.
    counts = summary["distributions"]["predicted_class_counts"]
    test_shares, served_shares = (np.array(counts[name]) / sum(counts[name])
                                  for name in ("test split", "served"))
    assert checks["predicted class"]["value"] == pytest.approx(
        np.abs(test_shares - served_shares).max(), abs=1e-6)
    assert sum(counts["served"]) == IMAGES
    # The training split's statistics as the Transform graph holds them: the smoke
    # data's channels are uniform over 0..199 plus 50, 20 and 0.
    channels = summary["distributions"]["channels"]
    np.testing.assert_allclose(channels["training mean"], [149.5, 119.5, 99.5], atol=3)
    np.testing.assert_allclose(channels["training std"], [57.7] * 3, atol=2)
    folder = os.path.dirname(summary["report"])
    assert sorted(os.listdir(folder)) == sorted([
        "index.html", monitor.SUMMARY_FILE, monitor.CLASSES_CHART, monitor.CONFIDENCE_CHART,
        monitor.CHANNELS_CHART])
    with open(summary["report"]) as page:
        assert "No drift" in page.read()
    # It only reads: the served versions are as they were.
    assert {number: os.stat(os.path.join(path, "saved_model.pb")).st_mtime_ns
            for number, path in ready_versions(base_path).items()} == served_before


# The smoke model, trained two epochs on noise, may answer one class for every image:
# then one repeated image moves the confidence histogram, not the class shares (the
# class check itself: tests/components/monitoring/test_traffic_drift.py).
@pytest.mark.parametrize("kind, expected", [
    ("one_image", {"predicted class", "top-1 confidence"}), ("inverted", {"pixel mean"})])
def test_drifted_traffic_exits_4_and_names_the_drift(pipeline_run, traffic, capsys, kind,
                                                     expected):
    config, _ = pipeline_run
    status, out, _ = _monitor(config, traffic[kind], capsys)
    assert status == Exit.ANOMALIES == 4, out
    summary = _summary(out)
    found = expected & set(summary["anomalies"])
    assert found, summary["anomalies"]
    drift_line = next(line for line in out.splitlines() if line.startswith("Drift: "))
    assert all(name in drift_line for name in found)
    assert any(line.strip().startswith(tuple(found)) and "DRIFT" in line
               for line in out.splitlines())
    with open(summary["report"]) as page:
        assert "Drift: " in page.read()
    if kind == "one_image":  # every answer is the same class
        counts = summary["distributions"]["predicted_class_counts"]["served"]
        assert sorted(counts)[-1] == IMAGES and len(counts) == len(CLASS_NAMES)


def test_bad_input_is_named_and_exits_2(pipeline_run, traffic, tmp_path, capsys):
    config, _ = pipeline_run
    reports = os.path.join(config.output_dir, "reports")
    before = sorted(os.listdir(reports)) if os.path.isdir(reports) else []
    status, _, err = _monitor(config, str(tmp_path / "absent"), capsys)
    assert status == 2 and f"{tmp_path / 'absent'}: no such request log directory" in err
    status, _, err = _monitor(config, traffic["like_training"], capsys, "--version", "999")
    assert status == 2 and "--version 999: no logged request" in err
    status, _, err = _monitor(config, traffic["like_training"], capsys, "--since", "2h")
    assert status == 0
    status, _, err = _monitor(config, traffic["like_training"], capsys,
                              "--since", "2999-01-01")
    assert status == 2 and "no logged requests to model 'cifar10' since 2999-01-01" in err
    status, _, err = _monitor(config, traffic["like_training"], capsys, "--since", "soon")
    assert status == 2 and "--since 'soon'" in err
    # A pipeline that pushed nothing there.
    status, _, err = _monitor(config, traffic["like_training"], capsys, "--output-dir",
                              str(tmp_path))
    assert status == 2 and "records no push to" in err
    after = sorted(os.listdir(reports))
    assert len(after) == len(before) + 1  # only the --since 2h run wrote a report


def test_since_and_unreadable_logs_are_named_in_the_user_s_terms(tmp_path, capsys):
    """Refused before any work, each in words: an empty or out-of-range `--since`, and a
    log whose every request file is unreadable (a folder named like one, a file that is
    not a TFRecord) rather than "no logged requests" alone; no report is written."""
    import pipeline_config

    config = pipeline_config.load("smoke", (f"output_dir={tmp_path / 'out'}",))
    for since, message in [("", "--since '': empty"),
                           ("99999999999d", "--since '99999999999d': out of range"),
                           ("9" * 400 + "d", "out of range"),
                           ("soon", "--since 'soon': expected a duration")]:
        status, _, err = _monitor(config, str(tmp_path), capsys, "--since", since)
        assert status == 2 and message in err, err
    logs = tmp_path / "requests"
    logs.mkdir()
    (logs / "requests-1-dir.tfrecord").mkdir()
    (logs / "requests-2-noise.tfrecord").write_bytes(b"\x01" * 20)
    status, _, err = _monitor(config, str(logs), capsys)
    assert status == 2, err
    assert ("no logged requests to model 'cifar10' (2 request files, 2 of them "
            "unreadable: requests-1-dir.tfrecord: Is a directory; "
            "requests-2-noise.tfrecord: ") in err
    assert "{{" not in err and "[Op:" not in err
    assert not os.path.exists(tmp_path / "out" / "reports")
