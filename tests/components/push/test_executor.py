"""The Pusher executor (TFX's own, with two guarantees added), run on real artifacts."""

from __future__ import annotations

import os
import shutil

from components.push import executor as pusher
from components.contract import ALREADY_PUSHED_AS_PROPERTY
from tests.support.pushing import push


def _push(model_uri: str, base_path: str, work_dir: str, name: str):
    return push(pusher.Executor, model_uri, base_path, work_dir, name)


def test_a_served_model_is_not_pushed_again_and_new_ones_get_new_versions(
        pushed_model, tmp_path):
    _, _, version_dir = pushed_model
    first_model = tmp_path / "model-a"
    shutil.copytree(version_dir, first_model / "Format-Serving")
    second_model = tmp_path / "model-b"
    shutil.copytree(version_dir, second_model / "Format-Serving")
    # A different model: one more asset file changes the directory's digest.
    (second_model / "Format-Serving" / "assets" / "note.txt").write_text("retrained")
    base_path = str(tmp_path / "serving" / "cifar10")

    first = _push(str(first_model), base_path, str(tmp_path), "1")
    assert first.get_int_custom_property("pushed") == 1
    again = _push(str(first_model), base_path, str(tmp_path), "2")
    assert again.get_int_custom_property("pushed") == 0
    assert again.get_string_custom_property(ALREADY_PUSHED_AS_PROPERTY) == \
        first.get_string_custom_property("pushed_version")
    second = _push(str(second_model), base_path, str(tmp_path), "3")
    assert second.get_int_custom_property("pushed") == 1
    versions = sorted(os.listdir(base_path))
    assert versions == sorted({first.get_string_custom_property("pushed_version"),
                               second.get_string_custom_property("pushed_version")})
    assert len(versions) == 2  # distinct even when both pushes fall in one second
    assert pusher.model_digest(os.path.join(base_path, versions[-1])) == \
        pusher.model_digest(str(second_model / "Format-Serving"))
