"""An artifact's splits on disk, read back.

TFX writes split `s` of an Examples artifact as gzipped TFRecords of tf.Examples, and of
an ExampleStatistics artifact as one `FeatureStats.pb`, under `<artifact uri>/Split-<s>/`.
The gates and the run report read them through here. Files are opened through TFX's
file-system layer, so remote artifact URIs work too.
"""

from __future__ import annotations

import os
from typing import List

from components.contract import TRAIN_SPLIT

_SPLIT_DIR_PREFIX = "Split-"
_STATISTICS_FILE = "FeatureStats.pb"


def split_uri(artifact_uri: str, split: str) -> str:
    return os.path.join(artifact_uri, f"{_SPLIT_DIR_PREFIX}{split}")


def split_names(artifact_uri: str) -> List[str]:
    """The artifact's splits, train first."""
    from tfx.dsl.io import fileio

    names = (entry.rstrip("/")[len(_SPLIT_DIR_PREFIX):]
             for entry in fileio.listdir(artifact_uri) if entry.startswith(_SPLIT_DIR_PREFIX))
    return sorted(names, key=lambda split: (split != TRAIN_SPLIT, split))


def split_records(examples_uri: str, split: str):
    """The split's serialized tf.Examples, file by file in name order (a tf.data
    Dataset of scalar strings)."""
    import tensorflow as tf
    from tfx.dsl.io import fileio

    files = sorted(fileio.glob(os.path.join(split_uri(examples_uri, split), "*")))
    return tf.data.TFRecordDataset(files, compression_type="GZIP")


def split_statistics(statistics_uri: str, split: str):
    """The split's DatasetFeatureStatisticsList, or None when the artifact has none."""
    import tensorflow_data_validation as tfdv
    from tfx.dsl.io import fileio

    path = os.path.join(split_uri(statistics_uri, split), _STATISTICS_FILE)
    return tfdv.load_stats_binary(path) if fileio.exists(path) else None
