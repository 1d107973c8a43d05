"""The ServingLoadCheck in a real TFX pipeline (Importer -> ServingLoadCheck -> the
project's Pusher): a model TF Serving's loader runs is INFRA_BLESSED and pushed; one
exported the earlier way (every signature fails there) is INFRA_NOT_BLESSED with the
reason, and the Pusher pushes nothing although the model's own blessing is BLESSED."""

from __future__ import annotations

import json
import os
import shutil

import keras
import pytest
import tensorflow_transform as tft
from tfx import v1 as tfx
from tfx.orchestration import metadata

from components.push import executor as cifar10_pusher
from components.contract import LOAD_CHECK_RESULT_FILE, SAVED_MODEL_FILE
from components.push.serving_load_check import ServingLoadCheck
from components.training.models import build_model
from pipeline import decision, summary
from pipeline.pipeline import SERVING_LOAD_CHECK_ID, SERVING_LOAD_CHECK_OUTPUT
from tests.support.data import png_images
from tests.support.earlier_export import export_as_before


def _push_pipeline(tmp_path, model_root: str, base_path: str) -> tfx.dsl.Pipeline:
    model = tfx.dsl.Importer(source_uri=model_root,
                             artifact_type=tfx.types.standard_artifacts.Model
                             ).with_id("ModelImporter")
    blessing = tfx.dsl.Importer(
        source_uri=str(tmp_path / "blessing"),
        artifact_type=tfx.types.standard_artifacts.ModelBlessing,
        custom_properties={"blessed": 1}).with_id("BlessingImporter")
    check = ServingLoadCheck(model=model.outputs["result"]).with_id(SERVING_LOAD_CHECK_ID)
    pusher = cifar10_pusher.Pusher(
        model=model.outputs["result"], model_blessing=blessing.outputs["result"],
        infra_blessing=check.outputs[SERVING_LOAD_CHECK_OUTPUT],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=base_path)))
    return tfx.dsl.Pipeline(
        pipeline_name="push", pipeline_root=str(tmp_path / "root"),
        components=[model, blessing, check, pusher],
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.sqlite")))


def _run(tmp_path, serving_model_dir: str) -> tuple:
    """Runs the pipeline on a Model artifact holding `serving_model_dir`; returns the
    check's verdict as the run summary reads it, the versions pushed, and its
    result file."""
    model_root = tmp_path / "model"
    shutil.copytree(serving_model_dir, model_root / "Format-Serving")
    (tmp_path / "blessing").mkdir()
    base_path = str(tmp_path / "serving")
    tfx.orchestration.LocalDagRunner().run(_push_pipeline(tmp_path, str(model_root), base_path))
    components = summary.latest_run(str(tmp_path / "metadata.sqlite"), "push")["components"]
    outputs = components[SERVING_LOAD_CHECK_ID]["outputs"][SERVING_LOAD_CHECK_OUTPUT]
    with open(os.path.join(outputs, LOAD_CHECK_RESULT_FILE)) as result_file:
        result = json.load(result_file)
    pushed = [path for path in (os.listdir(base_path) if os.path.isdir(base_path) else [])
              if os.path.exists(os.path.join(base_path, path, SAVED_MODEL_FILE))]
    return decision.serving_check(components), pushed, result, outputs


@pytest.mark.slow
def test_a_model_tf_serving_runs_is_infra_blessed_and_pushed(pushed_model, tmp_path):
    verdict, pushed, result, outputs = _run(tmp_path, pushed_model[2])
    assert verdict["ok"] and verdict["by"] == SERVING_LOAD_CHECK_ID
    assert result["warmup_requests"] == 3 and len(result["signatures"]) == 3
    assert os.path.exists(os.path.join(outputs, "INFRA_BLESSED"))
    assert len(pushed) == 1


def test_a_model_tf_serving_cannot_run_is_not_pushed(pipeline_run, tmp_path, capsys):
    _, run_summary = pipeline_run
    earlier = str(tmp_path / "earlier")
    keras.utils.set_random_seed(2)
    export_as_before(build_model("resnet9", 5e-4), tft.TFTransformOutput(
        run_summary["components"]["Transform"]["outputs"]["transform_graph"]),
        earlier, tta_flip=False, warmup_images=png_images(2))
    verdict, pushed, result, outputs = _run(tmp_path / "run", earlier)
    assert not verdict["ok"] and not result["ok"]
    assert "variables are not restored by TF Serving's loader" in verdict["detail"]
    assert os.path.exists(os.path.join(outputs, "INFRA_NOT_BLESSED"))
    assert pushed == []
    assert "ServingLoadCheck: INFRA_NOT_BLESSED, the model will not be pushed" in \
        capsys.readouterr().out
