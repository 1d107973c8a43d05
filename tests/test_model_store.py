"""The model store follows TF Serving's file-system source: integer versions with a
saved_model.pb, the latest served, a half-copied or corrupt version never served."""

from __future__ import annotations

import os
import shutil

import pytest

from serving.errors import ServingError
from serving.model_store import AVAILABLE, END, ModelStore, ready_versions


def _copy_version(version_dir: str, base_path, version: int, with_pb: bool = True) -> str:
    target = os.path.join(base_path, str(version))
    shutil.copytree(version_dir, target,
                    ignore=None if with_pb else shutil.ignore_patterns("saved_model.pb"))
    return target


def test_only_integer_directories_with_saved_model_pb_are_versions(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    _copy_version(version_dir, tmp_path, 3)
    _copy_version(version_dir, tmp_path, 5, with_pb=False)  # a copy in progress
    shutil.copytree(version_dir, tmp_path / "tmp-7")
    (tmp_path / "9").write_text("a file, not a directory")
    assert ready_versions(str(tmp_path)) == {3: str(tmp_path / "3")}


def test_latest_version_served_and_the_old_one_unloaded(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    messages = []
    _copy_version(version_dir, tmp_path, 3)
    store = ModelStore("cifar10", str(tmp_path), log=messages.append)
    store.poll_once()
    assert store.get("cifar10").version == 3
    half_copied = _copy_version(version_dir, tmp_path, 4, with_pb=False)
    store.poll_once()
    assert store.get("cifar10").version == 3  # saved_model.pb not there yet
    shutil.copy(os.path.join(version_dir, "saved_model.pb"), half_copied)
    store.poll_once()
    assert store.get("cifar10").version == 4
    assert [(s.version, s.state) for s in store.statuses("cifar10")] == [(4, AVAILABLE),
                                                                          (3, END)]
    with pytest.raises(ServingError) as raised:
        store.get("cifar10", 3)
    assert raised.value.code == "NOT_FOUND"
    assert any("Unloaded cifar10 version 3" in message for message in messages)


def test_a_corrupt_version_is_reported_and_the_last_good_one_kept(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    _copy_version(version_dir, tmp_path, 3)
    store = ModelStore("cifar10", str(tmp_path), log=lambda message: None)
    store.poll_once()
    corrupt = _copy_version(version_dir, tmp_path, 4)
    with open(os.path.join(corrupt, "saved_model.pb"), "wb") as pb_file:
        pb_file.write(b"truncated")
    store.poll_once()
    assert store.get("cifar10").version == 3
    statuses = {s.version: s for s in store.statuses("cifar10")}
    assert statuses[3].state == AVAILABLE
    assert statuses[4].state == END and statuses[4].error_message
    # Completed later (same version number, a new saved_model.pb): it is retried.
    shutil.copy(os.path.join(version_dir, "saved_model.pb"), corrupt)
    os.utime(os.path.join(corrupt, "saved_model.pb"), (1, 1))
    store.poll_once()
    assert store.get("cifar10").version == 4


def test_unknown_model_and_empty_base_path_are_not_found(tmp_path):
    store = ModelStore("cifar10", str(tmp_path), log=lambda message: None)
    store.poll_once()
    for call in (lambda: store.get("cifar10"), lambda: store.get("other"),
                 lambda: store.statuses("cifar10")):
        with pytest.raises(ServingError) as raised:
            call()
        assert raised.value.code == "NOT_FOUND"
