"""One version of a model, loaded for serving: what the store keeps and requests run.

Its own module so that what runs requests (inference.py) and what loads versions
(model_store.py, which replays warmup requests through inference.py) both import it
without importing each other.
"""

from __future__ import annotations

import dataclasses
import os

from components.contract import SAVED_MODEL_FILE


@dataclasses.dataclass
class LoadedVersion:
    version: int
    path: str
    # tf.saved_model.load's object; kept so its variables outlive the signatures.
    saved_model: object
    signatures: dict
    # tensorflow.MetaGraphDef.signature_def of the SavedModel (the metadata APIs).
    signature_defs: object


def load_version(version: int, path: str) -> LoadedVersion:
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = tf.saved_model.load(path)
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, SAVED_MODEL_FILE), "rb") as saved_model_file:
        proto.ParseFromString(saved_model_file.read())
    return LoadedVersion(version=version, path=path, saved_model=saved_model,
                         signatures=dict(saved_model.signatures),
                         signature_defs=proto.meta_graphs[0].signature_def)
