"""The version-directory rule every producer and consumer of served models shares: an
integer directory holding a saved_model.pb."""

from __future__ import annotations

import os
import shutil

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
