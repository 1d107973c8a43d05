"""The contract: its public names, and the version-directory rule every producer and
consumer of served models shares (an integer directory holding a saved_model.pb)."""

from __future__ import annotations

import os
import shutil

from components import contract
from components.contract import SAVED_MODEL_FILE, newest_version, ready_versions
from tests.support.pushing import copy_version


def test_only_integer_directories_with_saved_model_pb_are_versions(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    copy_version(version_dir, tmp_path, 3)
    copy_version(version_dir, tmp_path, 5, with_pb=False)  # a copy in progress
    shutil.copytree(version_dir, tmp_path / "tmp-7")
    (tmp_path / "9").write_text("a file, not a directory")
    assert ready_versions(str(tmp_path)) == {3: str(tmp_path / "3")}


def test_the_newest_complete_version_wins_and_an_empty_base_path_has_none(tmp_path):
    assert newest_version(str(tmp_path / "absent")) is None
    assert newest_version(str(tmp_path)) is None
    for version, complete in ((7, True), (12, True), (30, False)):
        os.makedirs(tmp_path / str(version))
        if complete:
            (tmp_path / str(version) / SAVED_MODEL_FILE).write_bytes(b"")
    # Numeric order, not text order ("7" > "12" as text); 30 is still being copied.
    assert newest_version(str(tmp_path)) == str(tmp_path / "12")


def test_the_public_names_are_what_clients_and_stored_artifacts_use():
    """Clients, TF Serving configs and every Examples artifact and model already
    written spell these values; changing one is a breaking change, made here on purpose
    or not at all."""
    assert {name: getattr(contract, name) for name in (
        "IMAGE_KEY", "LABEL_KEY", "IMAGE_ID_KEY", "IMAGE_XF_KEY", "LABEL_XF_KEY",
        "TRAIN_SPLIT", "TEST_SPLIT", "IMAGE_SHAPE", "NUM_CLASSES", "SAVED_MODEL_FILE",
        "CLASS_IDS_OUTPUT", "CLASS_NAMES_OUTPUT", "PROBABILITIES_OUTPUT",
        "ALREADY_PUSHED_AS_PROPERTY")} == {
        "IMAGE_KEY": "image", "LABEL_KEY": "label", "IMAGE_ID_KEY": "image_id",
        "IMAGE_XF_KEY": "image_xf", "LABEL_XF_KEY": "label_xf",
        "TRAIN_SPLIT": "train", "TEST_SPLIT": "test", "IMAGE_SHAPE": (32, 32, 3),
        "NUM_CLASSES": 10, "SAVED_MODEL_FILE": "saved_model.pb",
        "CLASS_IDS_OUTPUT": "class_ids", "CLASS_NAMES_OUTPUT": "class_names",
        "PROBABILITIES_OUTPUT": "probabilities",
        "ALREADY_PUSHED_AS_PROPERTY": "already_pushed_as"}
    assert (contract.DEFAULT_SIGNATURE, contract.IMAGES_INPUT) == ("serving_default", "images")
    assert (contract.EXAMPLES_SIGNATURE, contract.EXAMPLES_INPUT) == ("serving_examples",
                                                                      "examples")
    assert (contract.PIXELS_SIGNATURE, contract.PIXELS_INPUT) == ("serving_pixels", "pixels")
    assert contract.CLASS_NAMES == ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                    "frog", "horse", "ship", "truck")
