"""pipeline/kubeflow_runner.py compiles the pipeline with TFX's KubeflowV2DagRunner; the
job spec JSON is checked for the components, their wiring and their parameters (the
cluster itself cannot be reached from here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.contract import TEST_SPLIT, TRAIN_SPLIT
from tests.support.data import REPO_ROOT

pytestmark = pytest.mark.slow  # compiles the pipeline in a subprocess

pytest.importorskip("kfp.pipeline_spec", reason="the kubeflow extra is not installed "
                                                "(make test installs it)")

BEAM_COMPONENTS = ["Cifar10ExampleGen", "StatisticsGen", "Transform", "Evaluator"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    output = tmp_path_factory.mktemp("kubeflow") / "cifar10.json"
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.kubeflow_runner", "--profile", "full",
         "--output", str(output),
         "--set", "kubeflow.image=europe-docker.pkg.dev/p/r/cifar10-tfx:7",
         "--set", "kubeflow.data_root=gs://data-bucket/cifar10/spans",
         "--set", "kubeflow.pipeline_root=gs://run-bucket/root",
         "--set", "kubeflow.serving_model_dir=gs://serving-bucket/models",
         "--set", "evaluation.regression_tolerance=0.002",
         "--set", "kubeflow.evaluator_accelerator=NVIDIA_L4:2",
         "--set", "kubeflow.evaluator_memory_limit_gb=20.5",
         "--runner=DataflowRunner", "--project=my-project", "--region=europe-west4",
         "--temp_location=gs://run-bucket/tmp"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert str(output) in completed.stdout
    with open(output) as spec_file:
        return json.load(spec_file)["pipelineSpec"]


def _parameter(spec: dict, task: str, name: str):
    value = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][name]
    return value["runtimeValue"]["constantValue"]["stringValue"]


def _number(spec: dict, task: str, name: str) -> float:
    value = spec["root"]["dag"]["tasks"][task]["inputs"]["parameters"][name]["runtimeValue"]
    constant = value.get("constantValue", value.get("constant"))
    return float(constant["doubleValue"] if isinstance(constant, dict) else constant)


def test_every_component_is_a_task_in_dependency_order(compiled):
    tasks = compiled["root"]["dag"]["tasks"]
    assert set(tasks) == {
        "Cifar10ExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator",
        "DataGate", "Transform", "Trainer", "LatestBlessedModelResolver-model-resolver",
        "LatestBlessedModelResolver-model-blessing-resolver", "Evaluator", "RegressionGate",
        "ServingLoadCheck", "Pusher", "TFLiteExport", "TFLitePusher"}
    assert set(tasks["Transform"]["dependentTasks"]) >= {"DataGate"}
    assert set(tasks["Trainer"]["dependentTasks"]) == {"Transform", "ImportSchemaGen"}
    # No InfraValidator on Kubeflow V2: TF Serving's loader runs in the ServingLoadCheck.
    assert set(tasks["Pusher"]["dependentTasks"]) == {"Trainer", "RegressionGate",
                                                      "ServingLoadCheck"}
    assert set(tasks["ServingLoadCheck"]["dependentTasks"]) == {"Trainer"}
    # The TFLite variants: from the Trainer's model, pushed after (and only by) the Pusher.
    assert set(tasks["TFLiteExport"]["dependentTasks"]) == {"Trainer", "Transform",
                                                           "Cifar10ExampleGen"}
    assert set(tasks["TFLitePusher"]["dependentTasks"]) == {"Pusher", "TFLiteExport"}
    check = compiled["deploymentSpec"]["executors"]["ServingLoadCheck_executor"]["container"]
    assert check["image"] == "europe-docker.pkg.dev/p/r/cifar10-tfx:7"
    assert any("serving_load_check" in arg for arg in check["args"]), check["args"]
    assert ("LatestBlessedModelResolver-model-resolver"
            in tasks["RegressionGate"]["dependentTasks"])
    assert compiled["pipelineInfo"]["name"] == "cifar10-resnet9"


def test_beam_arguments_and_image_reach_every_beam_component(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    for component in BEAM_COMPONENTS:
        container = executors[f"{component}_executor"]["container"]
        assert container["image"] == "europe-docker.pkg.dev/p/r/cifar10-tfx:7"
        args = container["args"]
        for beam_arg in ("--runner=DataflowRunner", "--project=my-project",
                         "--region=europe-west4", "--temp_location=gs://run-bucket/tmp"):
            assert beam_arg in args, (component, args)
        # The direct runner's flags are not sent to a remote runner.
        assert not [arg for arg in args if arg.startswith("--direct_")], args
    example_gen = executors["Cifar10ExampleGen_executor"]["container"]["args"]
    assert example_gen[example_gen.index("--executor_class_path") + 1] == \
        "components.data.example_gen.Executor"


def test_data_gate_and_push_destination_are_the_configured_ones(compiled):
    assert _parameter(compiled, "Cifar10ExampleGen", "input_base") == \
        "gs://data-bucket/cifar10/spans"
    input_config = json.loads(_parameter(compiled, "Cifar10ExampleGen", "input_config"))
    patterns = {split["name"]: split["pattern"] for split in input_config["splits"]}
    assert patterns == {TRAIN_SPLIT: "span-{SPAN}/cifar-10-batches-py/data_batch_*",
                        TEST_SPLIT: "span-{SPAN}/cifar-10-batches-py/test_batch"}

    eval_config = json.loads(_parameter(compiled, "Evaluator", "eval_config"))
    (accuracy,) = [metric for metric in eval_config["metrics_specs"][0]["metrics"]
                   if metric["class_name"] == "SparseCategoricalAccuracy"]
    (threshold,) = accuracy["per_slice_thresholds"]
    assert threshold["slicing_specs"] == [{}]  # the overall slice only
    assert threshold["threshold"]["value_threshold"]["lower_bound"] == 0.94
    assert "change_threshold" not in threshold["threshold"]
    # The no-regression rule is the RegressionGate's.
    assert _number(compiled, "RegressionGate", "tolerance") == 0.002
    assert _number(compiled, "RegressionGate", "confidence") == 0.95

    push_destination = json.loads(_parameter(compiled, "Pusher", "push_destination"))
    assert push_destination["filesystem"]["base_directory"] == \
        "gs://serving-bucket/models/cifar10"

    custom_config = json.loads(_parameter(compiled, "Trainer", "custom_config"))
    assert custom_config["training"]["epochs"] == 24
    assert custom_config["backup_root"] == "gs://run-bucket/root/Trainer/backup"


def test_trainer_and_evaluator_pods_ask_for_their_accelerator_cpu_and_memory(compiled):
    executors = compiled["deploymentSpec"]["executors"]
    # The full profile's defaults for the Trainer, overrides for the Evaluator.
    assert executors["Trainer_executor"]["container"]["resources"] == {
        "accelerator": {"type": "NVIDIA_TESLA_T4", "count": "1"},
        "cpuRequest": 4.0, "cpuLimit": 8.0, "memoryRequest": 16.0, "memoryLimit": 30.0}
    assert executors["Evaluator_executor"]["container"]["resources"] == {
        "accelerator": {"type": "NVIDIA_L4", "count": "2"},
        "cpuRequest": 2.0, "cpuLimit": 4.0, "memoryRequest": 8.0, "memoryLimit": 20.5}
    for component in ("Cifar10ExampleGen", "Transform", "Pusher"):
        assert "resources" not in executors[f"{component}_executor"]["container"]


@pytest.mark.parametrize("override, message", [
    ("kubeflow.trainer_accelerator=NVIDIA_TESLA_T4:zero",
     "kubeflow.trainer_accelerator: expected TYPE:COUNT with a positive count"),
    ("kubeflow.evaluator_cpu_request=16",
     "kubeflow.evaluator_cpu_request: 16.0 is over kubeflow.evaluator_cpu_limit (4.0)"),
    ("kubeflow.trainer_memory_limit_gb=-1",
     "kubeflow.trainer_memory_limit_gb: must be >= 0"),
])
def test_bad_resources_exit_2_naming_the_setting(tmp_path, override, message):
    output = tmp_path / "spec.json"
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.kubeflow_runner", "--output", str(output),
         "--set", override],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_settings_exit_2_and_write_nothing(tmp_path):
    output = tmp_path / "spec.json"
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline.kubeflow_runner", "--output", str(output),
         "--set", "data.layout=tfrecord"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 2
    assert "data.layout: 'tfrecord' unknown (known: python, binary)" in completed.stderr
    assert list(tmp_path.iterdir()) == []
