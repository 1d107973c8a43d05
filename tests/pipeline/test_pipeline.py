"""The pipeline factory, compiled to TFX's intermediate representation (what every
orchestrator runs): the components, their wiring and their parameters."""

from __future__ import annotations

import json

from tfx.dsl.compiler import compiler

from components.contract import EXAMPLES_SIGNATURE, TEST_SPLIT
from components.training.config import training_config
from pipeline.pipeline import Ingestion, Locations, create_pipeline
from pipeline_config import BeamConfig, EvaluationConfig, TransformConfig, ValidationConfig


def _compiled(tmp_path, **changes):
    arguments = dict(
        pipeline_name="p",
        locations=Locations(pipeline_root=str(tmp_path / "root"),
                            serving_model_base_path="/models/cifar10",
                            metadata_path=str(tmp_path / "m.db")),
        ingestion=Ingestion(input_base="/data",
                            train_pattern="cifar-10-batches-py/data_batch_*",
                            test_pattern="cifar-10-batches-py/test_batch"),
        beam=BeamConfig(), transform=TransformConfig(), validation=ValidationConfig(),
        training=training_config("resnet9", epochs=1),
        evaluation=EvaluationConfig(accuracy_threshold=0.94, regression_confidence=0.9,
                                    regression_tolerance=0.002))
    arguments.update(changes)
    return compiler.Compiler().compile(create_pipeline(**arguments))


def _node(ir, node_id):
    (node,) = [n.pipeline_node for n in ir.nodes if n.pipeline_node.node_info.id == node_id]
    return node


def _parameter(node, name):
    return node.parameters.parameters[name].field_value.string_value


def test_evaluator_gate_and_pusher_destination(tmp_path):
    ir = _compiled(tmp_path)
    order = [n.pipeline_node.node_info.id for n in ir.nodes]
    assert sorted(order) == sorted([
        "Cifar10ExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator",
        "DataGate", "Transform", "Trainer", "Evaluator", "LatestBlessedModelResolver",
        "RegressionGate", "ServingLoadCheck", "Pusher", "TFLiteExport", "TFLitePusher"])
    assert (order.index("DataGate") < order.index("Transform") < order.index("Trainer")
            < order.index("Evaluator") < order.index("RegressionGate") < order.index("Pusher")
            < order.index("TFLitePusher"))
    assert order.index("Trainer") < order.index("TFLiteExport") < order.index("TFLitePusher")
    assert "DataGate" in _node(ir, "Transform").upstream_nodes
    evaluator = _node(ir, "Evaluator")
    # The baseline goes to the RegressionGate, not to TFMA.
    assert set(evaluator.inputs.inputs) == {"examples", "model"}
    eval_config = json.loads(_parameter(evaluator, "eval_config"))
    (accuracy,) = [m for m in eval_config["metrics_specs"][0]["metrics"]
                   if m["class_name"] == "SparseCategoricalAccuracy"]
    threshold = accuracy["per_slice_thresholds"][0]["threshold"]
    assert threshold["value_threshold"]["lower_bound"] == 0.94
    assert "change_threshold" not in threshold
    gate = _node(ir, "RegressionGate")
    assert set(gate.inputs.inputs) == {"model", "examples", "evaluation_blessing",
                                       "baseline_model"}
    assert gate.parameters.parameters["confidence"].field_value.double_value == 0.9
    assert gate.parameters.parameters["tolerance"].field_value.double_value == 0.002
    assert json.loads(_parameter(evaluator, "example_splits")) == [TEST_SPLIT]
    pusher = _node(ir, "Pusher")
    # TF Serving's loader must run the model before it is pushed.
    assert set(pusher.inputs.inputs) == {"model", "model_blessing", "infra_blessing"}
    (infra_channel,) = pusher.inputs.inputs["infra_blessing"].channels
    assert infra_channel.producer_node_query.id == "ServingLoadCheck"
    assert set(_node(ir, "ServingLoadCheck").inputs.inputs) == {"model"}
    destination = json.loads(_parameter(pusher, "push_destination"))
    assert destination["filesystem"]["base_directory"] == "/models/cifar10"


def test_infra_validator_gates_the_push_when_asked(tmp_path):
    ir = _compiled(tmp_path, infra_validation_image_tag="2.16.1")
    infra = _node(ir, "InfraValidator")
    serving_spec = json.loads(_parameter(infra, "serving_spec"))
    assert serving_spec["tensorflow_serving"]["tags"] == ["2.16.1"]
    assert "local_docker" in serving_spec
    request_spec = json.loads(_parameter(infra, "request_spec"))
    assert request_spec["tensorflow_serving"]["signature_names"] == [EXAMPLES_SIGNATURE]
    pusher = _node(ir, "Pusher")
    assert set(pusher.inputs.inputs) == {"model", "model_blessing", "infra_blessing"}
    (infra_channel,) = pusher.inputs.inputs["infra_blessing"].channels
    assert infra_channel.producer_node_query.id == "InfraValidator"
    assert "ServingLoadCheck" not in [n.pipeline_node.node_info.id for n in ir.nodes]


def test_without_any_serving_check_the_pusher_has_only_the_gate(tmp_path):
    ir = _compiled(tmp_path, serving_load_check=False)
    ids = [n.pipeline_node.node_info.id for n in ir.nodes]
    assert "ServingLoadCheck" not in ids and "InfraValidator" not in ids
    assert set(_node(ir, "Pusher").inputs.inputs) == {"model", "model_blessing"}


def test_remote_beam_arguments_reach_every_beam_powered_component(tmp_path):
    """What `--runner=DataflowRunner ...` becomes in the compiled pipeline: the Beam
    arguments each executor is started with (no cluster is contacted)."""
    from tfx.proto.orchestration import executable_spec_pb2, pipeline_pb2

    dataflow_args = ["--runner=DataflowRunner", "--project=my-project",
                     "--region=europe-west4", "--temp_location=gs://bucket/tmp"]
    ir = _compiled(tmp_path, beam=BeamConfig(runner="DataflowRunner",
                                             extra_args=tuple(dataflow_args[1:])))
    deployment = pipeline_pb2.IntermediateDeploymentConfig()
    ir.deployment_config.Unpack(deployment)
    beam_nodes = {}
    for node_id, spec in deployment.executor_specs.items():
        beam_spec = executable_spec_pb2.BeamExecutableSpec()
        if spec.Unpack(beam_spec):
            beam_nodes[node_id] = list(beam_spec.beam_pipeline_args)
    assert set(beam_nodes) == {"Cifar10ExampleGen", "StatisticsGen", "Transform",
                               "Evaluator"}
    for node_id, args in beam_nodes.items():
        assert args == dataflow_args, node_id
