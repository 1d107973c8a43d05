"""TFLitePusher: the TFLite variants that passed their check, pushed beside the
SavedModel version the Pusher just pushed, under the same version number.

`<tflite base path>/<version>/` (`<serving_model_dir>/tflite/<model name>/<version>/`)
gets `model_<variant>.tflite` for each passing variant and `labels.txt` (the class
names in class-id order). TFLite Metadata (labels and normalisation inside the file)
is not written: its only writer, tflite-support, has had no release since 2023 (0.4.4)
and is no longer maintained; the normalisation is inside the model anyway.

The push follows the SavedModel's rules: nothing unless the Pusher pushed (a blessed,
new model); a version directory that exists is never written again; the files are
written into a staging directory beside it and renamed into place, so a reader never
sees half a version. A variant that did not pass is named with its reason.
"""

import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import artifact, standard_artifacts
from tfx.utils import io_utils

from components import console
from components.contract import CLASS_NAMES, TFLITE_CHECK_FILE, TFLITE_LABELS_FILE
from components.tflite.component import TFLiteModels

# Custom properties of the TFLitePush artifact.
PUSHED_PROPERTY = "pushed"
PUSHED_VERSION_PROPERTY = "pushed_version"
PUSHED_DESTINATION_PROPERTY = "pushed_destination"
PUSHED_VARIANTS_PROPERTY = "pushed_variants"


class TFLitePush(artifact.Artifact):
    """Where the TFLite variants of a pushed version went (custom properties)."""

    TYPE_NAME = "cifar10.TFLitePush"  # <namespace>.<Name>, as Kubeflow V2 requires


def _pushed_version(pushed_model) -> str:
    """The version the Pusher pushed, or "" when it pushed nothing."""
    if (not pushed_model.has_custom_property("pushed")
            or pushed_model.get_int_custom_property("pushed") != 1):
        return ""
    return pushed_model.get_string_custom_property("pushed_version")


def push_variants(check: dict, models_dir: str, tflite_base_path: str, version: str) -> list:
    """Copies the passing variants of `check` (TFLITE_CHECK_FILE's content) from
    `models_dir` into `<tflite_base_path>/<version>/`, with the labels; returns the
    variants pushed. Prints each variant left out with its reason."""
    passing = []
    for variant, outcome in check["variants"].items():
        if outcome.get("passed"):
            passing.append(variant)
        else:
            console.report(f"TFLite {variant}: not pushed: {outcome['reason']}")
    destination = os.path.join(tflite_base_path, version)
    if not passing:
        return []
    if fileio.exists(destination):
        console.report(f"TFLite: {destination} exists; not pushed again")
        return []
    staging = os.path.join(tflite_base_path, f".{version}-staging")
    if fileio.exists(staging):  # left by a push that was killed
        fileio.rmtree(staging)
    fileio.makedirs(staging)
    for variant in passing:
        fileio.copy(os.path.join(models_dir, check["variants"][variant]["file"]),
                    os.path.join(staging, check["variants"][variant]["file"]))
    io_utils.write_string_file(os.path.join(staging, TFLITE_LABELS_FILE),
                               "\n".join(CLASS_NAMES) + "\n")
    fileio.rename(staging, destination)
    return passing


@component
def TFLitePusher(  # noqa: N802 (a TFX component is named like a class)
    pushed_model: InputArtifact[standard_artifacts.PushedModel],
    tflite_models: InputArtifact[TFLiteModels],
    tflite_push: OutputArtifact[TFLitePush],
    tflite_base_path: Parameter[str],
):
    """Pushes the passing variants of `tflite_models` as the version `pushed_model`
    records, when it records a push."""
    version = _pushed_version(pushed_model)
    pushed = []
    if version:
        with fileio.open(os.path.join(tflite_models.uri, TFLITE_CHECK_FILE)) as check_file:
            check = json.load(check_file)
        pushed = push_variants(check, tflite_models.uri, tflite_base_path, version)
    tflite_push.set_int_custom_property(PUSHED_PROPERTY, int(bool(pushed)))
    if pushed:
        tflite_push.set_string_custom_property(PUSHED_VERSION_PROPERTY, version)
        tflite_push.set_string_custom_property(
            PUSHED_DESTINATION_PROPERTY, os.path.join(tflite_base_path, version))
        tflite_push.set_string_custom_property(PUSHED_VARIANTS_PROPERTY, ",".join(pushed))
