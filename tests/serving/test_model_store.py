"""The model store follows TF Serving's file-system source (the version rule is
components.contract's): the latest version served, a half-copied or corrupt version
never served."""

from __future__ import annotations

import os
import shutil

import pytest

from components.contract import CANARY_LABEL, MODEL_CONFIG_FILE, SAVED_MODEL_FILE, STABLE_LABEL
from serving.errors import ServingError
from serving.labels import move_label
from serving.model_store import AVAILABLE, END, ENDED_VERSIONS_KEPT, ModelStore
from tests.support.pushing import copy_version


def test_only_the_newest_ended_versions_are_still_reported(tmp_path):
    store = ModelStore("cifar10", str(tmp_path), log=lambda message: None)
    pushes = ENDED_VERSIONS_KEPT + 3
    for version in range(1, pushes + 1):  # each one corrupt: it ends as it loads
        os.makedirs(tmp_path / str(version))
        (tmp_path / str(version) / SAVED_MODEL_FILE).write_bytes(b"not a SavedModel")
        store.poll_once()
    assert [(s.version, s.state) for s in store.statuses_now()] == [
        (version, END) for version in range(pushes, pushes - ENDED_VERSIONS_KEPT, -1)]
    # The load failures stay counted (a Prometheus counter does not go away).
    assert sorted(store.load_failures()) == list(range(1, pushes + 1))


def test_latest_version_served_and_the_old_one_unloaded(pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    messages = []
    copy_version(version_dir, tmp_path, 3)
    store = ModelStore("cifar10", str(tmp_path), log=messages.append)
    store.poll_once()
    assert store.get("cifar10").version == 3
    half_copied = copy_version(version_dir, tmp_path, 4, with_pb=False)
    store.poll_once()
    assert store.get("cifar10").version == 3  # saved_model.pb not there yet
    shutil.copy(os.path.join(version_dir, SAVED_MODEL_FILE), half_copied)
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
    copy_version(version_dir, tmp_path, 3)
    store = ModelStore("cifar10", str(tmp_path), log=lambda message: None)
    store.poll_once()
    corrupt = copy_version(version_dir, tmp_path, 4)
    with open(os.path.join(corrupt, SAVED_MODEL_FILE), "wb") as pb_file:
        pb_file.write(b"truncated")
    store.poll_once()
    assert store.get("cifar10").version == 3
    statuses = {s.version: s for s in store.statuses("cifar10")}
    assert statuses[3].state == AVAILABLE
    assert statuses[4].state == END and statuses[4].error_message
    # Completed later (same version number, a new saved_model.pb): it is retried.
    shutil.copy(os.path.join(version_dir, SAVED_MODEL_FILE), corrupt)
    os.utime(os.path.join(corrupt, SAVED_MODEL_FILE), (1, 1))
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


def test_a_label_moves_only_onto_a_loaded_version(pushed_model, tmp_path):
    """The config moves `stable` onto a version that fails to load: requests by the
    label keep getting the old version; an unknown label is refused by name."""
    _, _, version_dir = pushed_model
    copy_version(version_dir, tmp_path, 3)
    move_label(str(tmp_path), "cifar10", STABLE_LABEL, 3)
    store = ModelStore("cifar10", str(tmp_path), log=lambda message: None)
    store.poll_once()
    assert store.get("cifar10", label=STABLE_LABEL).version == 3
    copy_version(version_dir, tmp_path, 4)
    store.poll_once()
    assert store.get("cifar10").version == 3  # a push is not served while stable is set
    corrupt = copy_version(version_dir, tmp_path, 5)
    with open(os.path.join(corrupt, SAVED_MODEL_FILE), "wb") as pb_file:
        pb_file.write(b"truncated")
    move_label(str(tmp_path), "cifar10", STABLE_LABEL, 5)
    store.poll_once()
    assert store.get("cifar10", label=STABLE_LABEL).version == 3
    assert store.labels() == {STABLE_LABEL: 3}
    move_label(str(tmp_path), "cifar10", CANARY_LABEL, 4)
    store.poll_once()
    assert store.labels() == {STABLE_LABEL: 3, CANARY_LABEL: 4}
    assert store.get("cifar10", label=CANARY_LABEL).version == 4
    # The status by label ignores the label, as TF Serving's GetModelStatus does.
    assert [s.version for s in store.statuses("cifar10", label=CANARY_LABEL)] == [5, 4, 3]
    os.remove(os.path.join(str(tmp_path), MODEL_CONFIG_FILE))
    store.poll_once()  # no config: the newest loadable version again, no labels
    assert store.get("cifar10").version == 4 and store.labels() == {}
    with pytest.raises(ServingError) as raised:
        store.get("cifar10", label=STABLE_LABEL)
    assert raised.value.code == "INVALID_ARGUMENT"
    assert raised.value.message == "Unrecognized servable version label: stable"
