"""Pushing TFLite variants: only those that passed, with the labels, into a version
directory that appears whole; a version that exists is never written again."""

from __future__ import annotations

import os

import numpy as np

from components.contract import CLASS_NAMES, TFLITE_LABELS_FILE, tflite_file
from components.tflite.component import judge
from components.tflite.pusher import push_variants


def _check(models_dir) -> dict:
    labels = np.arange(200) % 10
    float16_predicted = labels.copy()
    int8_predicted = labels.copy()
    int8_predicted[:3] = (labels[:3] + 1) % 10  # 1.5 points worse than the SavedModel
    check = {"variants": {}}
    for variant, predicted in (("float16", float16_predicted), ("int8", int8_predicted)):
        (models_dir / tflite_file(variant)).write_bytes(variant.encode())
        check["variants"][variant] = {**judge(predicted, labels, labels, 0.005),
                                      "file": tflite_file(variant)}
    return check


def test_a_variant_over_the_drop_limit_is_not_pushed_and_says_why(tmp_path, capsys):
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    check = _check(models_dir)
    assert check["variants"]["int8"]["reason"] == (
        "accuracy 98.50% is 1.50 points below the SavedModel's 100.00% on the same 200 "
        "test images (limit 0.50 points)")
    base = str(tmp_path / "tflite" / "cifar10")
    assert push_variants(check, str(models_dir), base, "17") == ["float16"]
    assert "TFLite int8: not pushed: accuracy 98.50%" in capsys.readouterr().out
    pushed = os.path.join(base, "17")
    assert sorted(os.listdir(base)) == ["17"]  # no staging folder left
    assert sorted(os.listdir(pushed)) == [TFLITE_LABELS_FILE, tflite_file("float16")]
    with open(os.path.join(pushed, TFLITE_LABELS_FILE)) as labels_file:
        assert labels_file.read().splitlines() == list(CLASS_NAMES)

    # The same version again (a re-run): what is there stays as it is.
    (models_dir / tflite_file("float16")).write_bytes(b"another model")
    assert push_variants(check, str(models_dir), base, "17") == []
    assert "exists; not pushed again" in capsys.readouterr().out
    with open(os.path.join(pushed, tflite_file("float16")), "rb") as model_file:
        assert model_file.read() == b"float16"
