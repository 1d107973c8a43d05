"""`python -m pipeline evaluate`: accuracy of an exported model on a test split.

The images go in as PNG bytes through `serving_default`, exactly as a client sends
them, so the figure is the served model's, preprocessing included.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Optional

import numpy as np

from components.contract import (CLASS_IDS_OUTPUT, CLASS_NAMES, DEFAULT_SIGNATURE,
                                 IMAGES_INPUT, SAVED_MODEL_FILE)
from components import uris
from components.data import cifar10_format, source as data_source


def find_saved_model(model_path: str) -> str:
    """A SavedModel directory, or a Trainer/Pusher output holding one."""
    for candidate in (model_path, os.path.join(model_path, "Format-Serving")):
        if os.path.exists(os.path.join(candidate, SAVED_MODEL_FILE)):
            return candidate
    # A Trainer's model directory holds one integer directory per execution, and a
    # serving base path one per version: the newest, looked into the same way.
    numbered = sorted((int(entry), entry) for entry in (os.listdir(model_path)
                      if os.path.isdir(model_path) else []) if entry.isdigit())
    if numbered:
        return find_saved_model(os.path.join(model_path, numbered[-1][1]))
    raise cifar10_format.Cifar10DataError(
        f"{model_path}: no saved_model.pb here, in Format-Serving/ or in a version directory")


def load_test_split(source: data_source.DataSource, limit: Optional[int] = None) -> tuple:
    batches = [cifar10_format.read_batch(path, limit, opener=uris.open_file)
               for path in data_source.matching_files(source, source.test_pattern)]
    if not batches:
        raise cifar10_format.Cifar10DataError(
            f"{os.path.join(source.input_base, source.test_pattern)}: no test batch found")
    return (np.concatenate([b.images for b in batches]),
            np.concatenate([b.labels for b in batches]))


def evaluate(model_path: str, source: data_source.DataSource, batch_size: int = 250,
             limit: Optional[int] = None, stream=None) -> dict:
    import tensorflow as tf

    stream = stream or sys.stdout
    from components.data.example_gen import encode_png

    saved_model_dir = find_saved_model(model_path)
    serve = tf.saved_model.load(saved_model_dir).signatures[DEFAULT_SIGNATURE]
    images, labels = load_test_split(source, limit)
    predictions = []
    started = time.monotonic()
    for start in range(0, len(labels), batch_size):
        encoded = [encode_png(image) for image in images[start:start + batch_size]]
        outputs = serve(**{IMAGES_INPUT: tf.constant(encoded)})
        predictions.append(outputs[CLASS_IDS_OUTPUT].numpy())
    seconds = time.monotonic() - started
    predicted = np.concatenate(predictions)
    correct = predicted == labels
    per_class = {}
    print(f"{'class':12s} {'images':>7s} {'accuracy':>9s}", file=stream)
    for class_id, name in enumerate(CLASS_NAMES):
        mask = labels == class_id
        per_class[name] = float(correct[mask].mean()) if mask.any() else None
        shown = f"{per_class[name]:.4f}" if mask.any() else "-"
        print(f"{name:12s} {int(mask.sum()):7d} {shown:>9s}", file=stream)
    result = {"model": saved_model_dir, "images": int(len(labels)),
              "accuracy": float(correct.mean()), "per_class": per_class,
              "images_per_second": round(len(labels) / seconds, 1)}
    print(f"{'all':12s} {len(labels):7d} {result['accuracy']:9.4f}", file=stream)
    print(json.dumps(result, sort_keys=True), file=stream, flush=True)
    return result
