"""What the report reads from an Examples artifact: the number of images of each class
per split, and the encoded images of chosen test examples (the confidently wrong ones).

ExampleGen writes each split as gzipped TFRecords of tf.Examples under `Split-<name>/`;
only the features asked for are parsed.
"""

from __future__ import annotations

from typing import Dict, Iterable, List

from components.contract import IMAGE_ID_KEY, IMAGE_KEY, LABEL_KEY, NUM_CLASSES
from components.data.split_files import split_names, split_records

_BATCH = 4096


def class_counts(examples_uri: str) -> Dict[str, List[int]]:
    """Split name -> images per class id (0..NUM_CLASSES-1)."""
    import numpy as np
    import tensorflow as tf

    spec = {LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    counts = {}
    for split in split_names(examples_uri):
        total = np.zeros(NUM_CLASSES, np.int64)
        for batch in split_records(examples_uri, split).batch(_BATCH):
            labels = tf.io.parse_example(batch, spec)[LABEL_KEY].numpy()
            total += np.bincount(labels, minlength=NUM_CLASSES)[:NUM_CLASSES]
        counts[split] = [int(count) for count in total]
    return counts


def encoded_images(examples_uri: str, split: str, image_ids: Iterable[str]) -> Dict[str, bytes]:
    """image id -> the image as ExampleGen stored it (PNG bytes), for the ids asked for."""
    import tensorflow as tf

    wanted = set(image_ids)
    spec = {IMAGE_ID_KEY: tf.io.FixedLenFeature([], tf.string),
            IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)}
    found = {}
    if not wanted:
        return found
    for batch in split_records(examples_uri, split).batch(_BATCH):
        parsed = tf.io.parse_example(batch, spec)
        for image_id, image in zip(parsed[IMAGE_ID_KEY].numpy(), parsed[IMAGE_KEY].numpy()):
            image_id = image_id.decode()
            if image_id in wanted:
                found[image_id] = image
        if len(found) == len(wanted):
            break
    return found
