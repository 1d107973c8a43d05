"""The Pusher executor (TFX's own, with two guarantees added), run on real artifacts."""

from __future__ import annotations

import os
import shutil

from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import pusher


def _push(model_uri: str, base_path: str, work_dir: str, name: str):
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
    pusher.Executor().Do({"model": [model], "model_blessing": [blessing]},
                         {"pushed_model": [pushed]},
                         {"push_destination": proto_utils.proto_to_json(destination)})
    return pushed


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
    assert again.get_string_custom_property(pusher.ALREADY_PUSHED_AS_KEY) == \
        first.get_string_custom_property("pushed_version")
    second = _push(str(second_model), base_path, str(tmp_path), "3")
    assert second.get_int_custom_property("pushed") == 1
    versions = sorted(os.listdir(base_path))
    assert versions == sorted({first.get_string_custom_property("pushed_version"),
                               second.get_string_custom_property("pushed_version")})
    assert len(versions) == 2  # distinct even when both pushes fall in one second
    assert pusher.model_digest(os.path.join(base_path, versions[-1])) == \
        pusher.model_digest(str(second_model / "Format-Serving"))
