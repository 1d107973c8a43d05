"""Putting model versions under a serving base path: a Pusher executor run on real
artifacts, as the Pusher component runs it, or a plain copy of a version directory."""

from __future__ import annotations

import os
import shutil

from components.contract import SAVED_MODEL_FILE


def copy_version(version_dir: str, base_path, version: int, with_pb: bool = True) -> str:
    """Copies a SavedModel to `<base_path>/<version>`; without its saved_model.pb when
    `with_pb` is False (a copy still in progress)."""
    target = os.path.join(base_path, str(version))
    shutil.copytree(version_dir, target,
                    ignore=None if with_pb else shutil.ignore_patterns(SAVED_MODEL_FILE))
    return target


def push(executor_class, model_uri: str, base_path: str, work_dir: str, name: str):
    """Runs a Pusher executor on a Model artifact at `model_uri` (holding
    `Format-Serving/`) with a BLESSED blessing; returns the PushedModel artifact it
    recorded."""
    from tfx.proto import pusher_pb2
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = os.path.join(work_dir, f"blessing-{name}")
    os.makedirs(blessing.uri)
    open(os.path.join(blessing.uri, "BLESSED"), "w").close()
    blessing.set_int_custom_property("blessed", 1)
    model = standard_artifacts.Model()
    model.uri = model_uri
    pushed = standard_artifacts.PushedModel()
    pushed.uri = os.path.join(work_dir, f"pushed-{name}")
    destination = pusher_pb2.PushDestination(
        filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base_path))
    executor_class().Do({"model": [model], "model_blessing": [blessing]},
                        {"pushed_model": [pushed]},
                        {"push_destination": proto_utils.proto_to_json(destination)})
    return pushed
