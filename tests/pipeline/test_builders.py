"""From a config to the factory, per runner: what each builder's pipeline ingests,
trains on and validates, compiled to TFX's intermediate representation."""

from __future__ import annotations

import json

from tfx.dsl.compiler import compiler

import pipeline_config
from components.data.source import DataSource
from pipeline import builders
from pipeline.pipeline import (DATA_GATE_ID, EXAMPLE_GEN_ID, LABEL_DRIFT_ID,
                               PREVIOUS_SPAN_STATISTICS_RESOLVER_ID, TRAINING_SPANS_RESOLVER_ID)

SPANNED = DataSource(input_base="/data/spans", layout="python",
                     train_pattern="span-{SPAN}/cifar-10-batches-py/data_batch_*",
                     test_pattern="span-{SPAN}/cifar-10-batches-py/test_batch", spans=(0, 2, 5))


def _nodes(tfx_pipeline) -> dict:
    ir = compiler.Compiler().compile(tfx_pipeline)
    return {node.pipeline_node.node_info.id: node.pipeline_node for node in ir.nodes}


def _ingested_span(nodes):
    parameters = nodes[EXAMPLE_GEN_ID].parameters.parameters
    if "range_config" not in parameters:
        return None
    range_config = json.loads(parameters["range_config"].field_value.string_value)
    static = range_config["static_range"]
    assert static["start_span_number"] == static["end_span_number"]
    return static["start_span_number"]


def _config(tmp_path, *overrides):
    return pipeline_config.load("smoke", (f"output_dir={tmp_path}",) + overrides)


def test_a_local_run_ingests_the_newest_span_and_trains_on_the_window(tmp_path):
    config = _config(tmp_path, "retraining.training_spans=2")
    nodes = _nodes(builders.local_pipeline(config, SPANNED, infra_validation_image_tag="2.16.1"))
    assert _ingested_span(nodes) == 5
    (strategy,) = [graph_node.op_node
                   for graph in nodes[TRAINING_SPANS_RESOLVER_ID].inputs.input_graphs.values()
                   for graph_node in graph.nodes.values() if graph_node.HasField("op_node")]
    assert strategy.op_type == "components.data.spans.LatestSpansStrategy"
    assert strategy.kwargs["num_spans"].value.field_value.int_value == 2
    assert "InfraValidator" in nodes


def test_span_data_is_checked_for_label_drift_against_the_previous_span(tmp_path):
    config = _config(tmp_path, "validation.label_drift_threshold=0.2",
                     "validation.block_on_anomalies=false")
    nodes = _nodes(builders.local_pipeline(config, SPANNED))
    (strategy,) = [graph_node.op_node
                   for graph in nodes[PREVIOUS_SPAN_STATISTICS_RESOLVER_ID].inputs
                   .input_graphs.values()
                   for graph_node in graph.nodes.values() if graph_node.HasField("op_node")]
    assert strategy.op_type == "components.validation.drift.PreviousSpanStatisticsStrategy"
    drift = nodes[LABEL_DRIFT_ID]
    assert drift.parameters.parameters["threshold"].field_value.double_value == 0.2
    assert set(drift.inputs.inputs) == {"statistics", "baseline_statistics", "schema"}
    gate = nodes[DATA_GATE_ID]
    assert set(gate.inputs.inputs) == {"anomalies", "drift_anomalies", "examples", "schema"}
    assert gate.parameters.parameters["block_on_anomalies"].field_value.string_value == "false"


def test_unspanned_data_has_no_drift_check(tmp_path):
    unspanned = DataSource("/data", "python", "cifar-10-batches-py/data_batch_*",
                           "cifar-10-batches-py/test_batch", ())
    nodes = _nodes(builders.local_pipeline(_config(tmp_path), unspanned))
    assert LABEL_DRIFT_ID not in nodes
    assert set(nodes[DATA_GATE_ID].inputs.inputs) == {"anomalies", "examples", "schema"}


def test_an_earlier_span_is_ingested_by_the_same_pipeline_pinned_to_it(tmp_path):
    config = _config(tmp_path)
    ingestion = _nodes(builders.span_ingestion_pipeline(config, SPANNED, 2))
    assert _ingested_span(ingestion) == 2
    full = _nodes(builders.local_pipeline(config, SPANNED))
    # The same node ids, so later runs find the span's artifact and caching applies.
    assert set(ingestion) == set(full)
    assert "InfraValidator" not in ingestion


def test_a_scheduled_pipeline_finds_the_span_at_run_time_and_probes_nothing(tmp_path):
    nodes = _nodes(builders.scheduled_pipeline(_config(tmp_path), SPANNED))
    assert _ingested_span(nodes) is None
    assert TRAINING_SPANS_RESOLVER_ID in nodes
    # `auto` cannot ask Docker at parse time: the in-process ServingLoadCheck; `docker`
    # puts InfraValidator in instead, `off` neither.
    assert "InfraValidator" not in nodes and "ServingLoadCheck" in nodes
    forced = _nodes(builders.scheduled_pipeline(
        _config(tmp_path, "push.infra_validation=docker"), SPANNED))
    assert "InfraValidator" in forced and "ServingLoadCheck" not in forced
    off = _nodes(builders.scheduled_pipeline(
        _config(tmp_path, "push.infra_validation=off"), SPANNED))
    assert "InfraValidator" not in off and "ServingLoadCheck" not in off


def test_kubeflow_uses_the_cluster_paths_and_metadata_and_the_newest_span(tmp_path):
    config = _config(tmp_path, "kubeflow.pipeline_root=gs://b/root",
                     "kubeflow.serving_model_dir=gs://b/models")
    source = DataSource("gs://b/spans", "python", SPANNED.train_pattern, SPANNED.test_pattern, ())
    tfx_pipeline = builders.kubeflow_pipeline(config, source)
    assert tfx_pipeline.metadata_connection_config is None
    assert tfx_pipeline.pipeline_info.pipeline_root == "gs://b/root"
    nodes = _nodes(tfx_pipeline)
    assert TRAINING_SPANS_RESOLVER_ID not in nodes and _ingested_span(nodes) is None
    destination = json.loads(
        nodes["Pusher"].parameters.parameters["push_destination"].field_value.string_value)
    assert destination["filesystem"]["base_directory"] == "gs://b/models/cifar10"
