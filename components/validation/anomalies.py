"""Reading what ExampleValidator and LabelDriftValidator found.

Both write one `SchemaDiff.pb` (a tensorflow_metadata `Anomalies` proto) per split:
ExampleValidator under `Split-<split>/`, LabelDriftValidator (as TFX's
DistributionValidator) under
`SplitPair-<new split>_<baseline split>/`. An empty proto means no anomaly.
"""

from __future__ import annotations

import os
from typing import List

# The file both validators write per split (TFX's validator executors' DEFAULT_FILE_NAME).
SCHEMA_DIFF_FILE = "SchemaDiff.pb"
_SPLIT_DIR_PREFIXES = ("Split-", "SplitPair-")


def describe(anomalies_uri: str) -> List[dict]:
    """Every anomaly under an ExampleAnomalies artifact's URI, one dict each: `split`,
    `feature` (None for one about the whole dataset), `severity`, `short` and
    `description` (TFDV's own wording), sorted by split and feature."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.dsl.io import fileio

    found = []
    if not fileio.isdir(anomalies_uri):
        return found
    for entry in sorted(fileio.listdir(anomalies_uri)):
        entry = entry.rstrip("/")
        prefix = next((p for p in _SPLIT_DIR_PREFIXES if entry.startswith(p)), None)
        diff_path = os.path.join(anomalies_uri, entry, SCHEMA_DIFF_FILE)
        if prefix is None or not fileio.exists(diff_path):
            continue
        anomalies = anomalies_pb2.Anomalies()
        with fileio.open(diff_path, "rb") as diff_file:
            anomalies.ParseFromString(diff_file.read())
        split = entry[len(prefix):]
        infos = sorted(anomalies.anomaly_info.items())
        if anomalies.HasField("dataset_anomaly_info"):
            infos.append((None, anomalies.dataset_anomaly_info))
        for feature, info in infos:
            found.append({
                "split": split,
                "feature": feature,
                "severity": anomalies_pb2.AnomalyInfo.Severity.Name(info.severity),
                "short": info.short_description,
                "description": info.description,
            })
    return found
