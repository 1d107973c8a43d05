"""`python -m serving predict --tflite`: a pushed TFLite model on image files in the
interpreter answers as the SavedModel does, with the labels pushed beside it, and
refuses what the exported graph refuses, naming the file."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

from components.contract import DEFAULT_SIGNATURE, IMAGES_INPUT, tflite_base_path, tflite_file
from tests.support.data import REPO_ROOT, random_batch


def _predict(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serving", "predict", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def _image(path, pixels: np.ndarray, image_format: str) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    path.write_bytes(buffer.getvalue())
    return str(path)


def test_a_pushed_tflite_model_answers_as_the_saved_model_and_refuses_bad_files(
        pushed_model, tmp_path):
    base_path, version, version_dir = pushed_model
    model_path = os.path.join(tflite_base_path(base_path), str(version), tflite_file("float16"))
    assert os.path.isfile(model_path)  # float16 keeps the answers, so it was pushed
    pixels = random_batch(2, seed=41)[0]
    images = [_image(tmp_path / "cat.png", pixels[0], "PNG"),
              _image(tmp_path / "ship.jpg", pixels[1], "JPEG")]
    finished = _predict("--tflite", model_path, *images)
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == ""  # TensorFlow's start-up lines are kept off the console
    rows = [line.split() for line in finished.stdout.splitlines()[1:]]
    served = tf.saved_model.load(version_dir).signatures[DEFAULT_SIGNATURE](**{
        IMAGES_INPUT: tf.constant([open(path, "rb").read() for path in images])})
    assert [row[0] for row in rows] == images
    assert [int(row[1]) for row in rows] == served["class_ids"].numpy().tolist()
    assert [row[2] for row in rows] == [name.decode() for name in
                                        served["class_names"].numpy()]
    np.testing.assert_allclose([float(row[3]) for row in rows],
                               served["probabilities"].numpy().max(axis=1), atol=2e-3)

    large = _image(tmp_path / "large.png", np.zeros((64, 64, 3), np.uint8), "PNG")
    finished = _predict("--tflite", model_path, images[0], large)
    assert finished.returncode == 2
    assert f"{large}: 64x64 pixels; the model takes 32x32" in finished.stderr
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    finished = _predict("--tflite", model_path, str(text))
    assert finished.returncode == 2 and f"{text}: not a PNG, JPEG or BMP image" in (
        finished.stderr)
    finished = _predict("--tflite", str(tmp_path / "absent.tflite"), images[0])
    assert finished.returncode == 2 and "absent.tflite: no such file" in finished.stderr
