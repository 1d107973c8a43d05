"""The standard Pusher, with two guarantees added for scheduled runs.

TFX's filesystem Pusher copies a blessed model to `<base_directory>/<unix time>/`,
`saved_model.pb` last, so TF Serving never sees a half-copied version. This executor
keeps that and adds:
- a model that already is a version under the base directory is not pushed again
  (a re-run whose Evaluator blesses the same model again changes nothing served);
- two pushes within one second get different versions, where the standard executor
  would skip the second copy yet record it as pushed.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Optional

from absl import logging
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.contract import ALREADY_PUSHED_AS_PROPERTY, ready_versions


def model_digest(model_dir: str) -> str:
    """SHA-256 over every file of a SavedModel directory (relative paths and bytes)."""
    digest = hashlib.sha256()
    for root, dirs, files in fileio.walk(model_dir):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, model_dir).encode() + b"\0")
            with fileio.open(path, "rb") as model_file:
                for block in iter(lambda: model_file.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def version_holding(base_directory: str, model_dir: str) -> Optional[str]:
    """The complete version under `base_directory` that holds `model_dir`'s model."""
    if not fileio.isdir(base_directory):
        return None
    wanted = None
    versions = ready_versions(base_directory, fileio.listdir, fileio.exists)
    for version in sorted(versions, reverse=True):
        wanted = wanted or model_digest(model_dir)
        if model_digest(versions[version]) == wanted:
            return str(version)
    return None


class Executor(pusher_executor.Executor):

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") == "filesystem" and self.CheckBlessing(
                input_dict):
            base_directory = destination.filesystem.base_directory
            existing = version_holding(base_directory, self.GetModelPath(input_dict))
            if existing is not None:
                model_push = artifact_utils.get_single_instance(
                    output_dict[standard_component_specs.PUSHED_MODEL_KEY])
                self._MarkNotPushed(model_push)
                model_push.set_string_custom_property(ALREADY_PUSHED_AS_PROPERTY, existing)
                logging.info(f"Pusher: the model already is version {existing} under "
                             f"{base_directory}; not pushed again")
                return
            # The standard executor names the version after the current second.
            while fileio.exists(os.path.join(base_directory, str(int(time.time())))):
                time.sleep(0.1)
        super().Do(input_dict, output_dict, exec_properties)


class Pusher(pusher_component.Pusher):
    """The standard Pusher component running the executor above."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
