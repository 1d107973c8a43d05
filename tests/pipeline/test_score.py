"""`python -m pipeline score`: TFX's BulkInferrer with the smoke run's pushed model on a
directory of good images, a 64x64 image, a text file and an official-layout batch
file; the good ones scored as the served model scores them, the two refused named,
valid JSONL written, and bad input refused before anything is written."""

from __future__ import annotations

import importlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.contract import CLASS_NAMES, DEFAULT_SIGNATURE, IMAGES_INPUT
from components.data import cifar10_format
from pipeline.score import PREDICTIONS_FILE, REFUSED_FILE, SCORES_DIR
from tests.support.console import library_lines
from tests.support.data import REPO_ROOT, random_batch


def _score(config, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "score", "--profile", config.profile,
         "--output-dir", config.output_dir, *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def _encoded(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def _read_jsonl(path: str) -> list:
    with open(path) as lines:
        return [json.loads(line) for line in lines]


def test_a_directory_is_scored_and_what_the_model_refuses_is_named(pipeline_run,
                                                                   pushed_model, tmp_path):
    config, _ = pipeline_run
    _, version, version_dir = pushed_model
    data_dir = tmp_path / "new_images"
    data_dir.mkdir()
    pixels = random_batch(4, seed=31)[0]
    sent = {"cat.png": _encoded(pixels[0], "PNG"), "dog.png": _encoded(pixels[1], "PNG"),
            "ship.jpg": _encoded(pixels[2], "JPEG"),
            "large.png": _encoded(np.zeros((64, 64, 3), np.uint8), "PNG"),
            "notes.txt": b"not an image"}
    for name, content in sent.items():
        (data_dir / name).write_bytes(content)
    # What cannot be read is refused with the reason, not a failed run.
    os.symlink("loopB", data_dir / "loopA")
    os.symlink("loopA", data_dir / "loopB")
    (data_dir / "more").mkdir()
    # A batch file in the official layout beside them (its labels are not used; the
    # layout's metadata file is not an image to refuse).
    batch_images = random_batch(3, seed=32)[0]
    cifar10_format.write_dataset(str(data_dir), cifar10_format.PYTHON_LAYOUT,
                                 [(batch_images, [0, 1, 2])], None)

    finished = _score(config, "--data-dir", str(data_dir))
    assert finished.returncode == 0, finished.stdout + finished.stderr
    console = (finished.stdout + finished.stderr).splitlines()
    assert library_lines(console) == [], library_lines(console)
    assert f"Scored 6 images with version {version}" in finished.stdout
    assert ("refused large.png: wrong size: 64x64 pixels; the model takes 32x32 and does "
            "not resize") in finished.stdout
    assert "refused notes.txt: undecodable" in finished.stdout
    assert "refused loopA: unreadable: Too many levels of symbolic links" in finished.stdout
    assert "refused more: a folder, not an image or batch file" in finished.stdout
    assert "{{" not in finished.stdout and "[Op:" not in finished.stdout
    predictions_path = next(line for line in console if line.startswith("Predictions: ")
                            ).removeprefix("Predictions: ")
    folder = os.path.dirname(predictions_path)
    assert os.path.dirname(folder) == os.path.join(os.path.abspath(config.output_dir),
                                                   SCORES_DIR)
    assert sorted(os.listdir(folder)) == [PREDICTIONS_FILE, REFUSED_FILE]
    assert [item["image"] for item in _read_jsonl(os.path.join(folder, REFUSED_FILE))] == [
        "large.png", "loopA", "loopB", "more", "notes.txt"]

    rows = {row["image"]: row for row in _read_jsonl(predictions_path)}
    assert sorted(rows) == ["cat.png", "data_batch_1:00000", "data_batch_1:00001",
                            "data_batch_1:00002", "dog.png", "ship.jpg"]
    # The served model's own answers on the same bytes (batch images as ExampleGen
    # stores them: PNG).
    from components.data.example_gen import encode_png
    served = tf.saved_model.load(version_dir).signatures[DEFAULT_SIGNATURE]
    names = ["cat.png", "dog.png", "ship.jpg"] + [f"data_batch_1:{index:05d}"
                                                  for index in range(3)]
    encoded = [sent[name] for name in names[:3]] + [encode_png(image)
                                                    for image in batch_images]
    expected = served(**{IMAGES_INPUT: tf.constant(encoded)})["probabilities"].numpy()
    for name, probabilities in zip(names, expected):
        row = rows[name]
        np.testing.assert_allclose(row["probabilities"], probabilities, atol=1e-5)
        assert row["class_id"] == int(np.argmax(row["probabilities"]))
        assert row["class_name"] == CLASS_NAMES[row["class_id"]]
        assert row["model_version"] == version


def test_bad_input_exits_2_and_writes_nothing(pipeline_run, tmp_path, capsys):
    config, _ = pipeline_run
    scores_before = (sorted(os.listdir(os.path.join(config.output_dir, SCORES_DIR)))
                     if os.path.isdir(os.path.join(config.output_dir, SCORES_DIR)) else [])
    logs_dir = os.path.join(config.output_dir, "logs")
    logs_before = sorted(os.listdir(logs_dir)) if os.path.isdir(logs_dir) else []
    finished = _score(config, "--data-dir", str(tmp_path / "absent"))
    assert finished.returncode == 2
    assert f"--data-dir {tmp_path / 'absent'}: no such directory" in finished.stderr
    # The same checks in this process (--verbose: no log to keep out of pytest's way).
    cli = importlib.import_module("pipeline.__main__")
    command = ["score", "--verbose", "--profile", config.profile, "--output-dir",
               config.output_dir, "--data-dir", str(tmp_path / "images")]
    (tmp_path / "images").mkdir()
    assert cli.main(command) == 2
    assert "images: holds no files to score" in capsys.readouterr().err
    (tmp_path / "one.png").write_bytes(b"x")
    assert cli.main(command[:-1] + [str(tmp_path / "one.png")]) == 2
    assert "one.png: a file, not a directory" in capsys.readouterr().err
    (tmp_path / "images" / "a.png").write_bytes(_encoded(np.zeros((32, 32, 3), np.uint8),
                                                        "PNG"))
    assert cli.main(command + ["--model", str(tmp_path)]) == 2
    assert f"--model {tmp_path}: neither a SavedModel" in capsys.readouterr().err
    assert (sorted(os.listdir(os.path.join(config.output_dir, SCORES_DIR)))
            if os.path.isdir(os.path.join(config.output_dir, SCORES_DIR)) else []
            ) == scores_before
    assert (sorted(os.listdir(logs_dir)) if os.path.isdir(logs_dir) else []) == logs_before


@pytest.mark.parametrize("content, reason", [
    (_encoded(np.zeros((32, 32, 3), np.uint8), "GIF"), "GIF is not accepted"),
    (_encoded(np.zeros((32, 32, 3), np.uint8), "TIFF"), "undecodable"),  # PIL reads it
    (_encoded(np.zeros((32, 32, 3), np.uint8), "PNG")[:60], "undecodable"),  # truncated
    # A 32x32 header and no pixels, refused in plain words (no TensorFlow node names).
    (_encoded(np.zeros((32, 32, 3), np.uint8), "PNG")[:33],
     "undecodable: Invalid PNG. Failed to initialize decoder."),
    (_encoded(np.zeros((32, 48, 3), np.uint8), "JPEG"), "wrong size: 48x32"),
    (b"", "undecodable"),
    (_encoded(np.zeros((32, 32, 3), np.uint8), "BMP"), "")])
def test_the_model_s_own_checks_decide_what_is_refused(content, reason):
    from components.scoring.unlabeled_images import image_problem
    problem = image_problem(content)
    assert problem.startswith(reason) and bool(problem) == bool(reason), problem


def test_an_interrupted_score_leaves_nothing_behind(pipeline_run, tmp_path):
    """Stopped by SIGTERM while it works (its folder under construction), `score`
    removes that folder, names its log as interrupted and exits 128 + 15."""
    config, _ = pipeline_run
    signum = signal.SIGTERM
    data_dir = tmp_path / "images"
    data_dir.mkdir()
    for index, pixels in enumerate(random_batch(3, seed=33)[0]):
        (data_dir / f"{index}.png").write_bytes(_encoded(pixels, "PNG"))
    scores_dir = os.path.join(config.output_dir, SCORES_DIR)
    before = sorted(os.listdir(scores_dir)) if os.path.isdir(scores_dir) else []
    running = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "score", "--profile", config.profile,
         "--output-dir", config.output_dir, "--data-dir", str(data_dir)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (os.path.isdir(scores_dir) and any(
            name.startswith(".partial-") for name in os.listdir(scores_dir))):
        assert running.poll() is None and time.monotonic() < deadline, running.communicate()
        time.sleep(0.05)
    running.send_signal(signum)
    out, err = running.communicate(timeout=120)
    assert running.returncode == 128 + signum, out + err
    assert f"Interrupted ({signal.Signals(signum).name}): nothing was written" in err
    assert sorted(os.listdir(scores_dir)) == before
    log_path = err.rsplit("the output so far: ", 1)[1].strip()
    assert log_path.endswith("-interrupted.log") and os.path.isfile(log_path)
