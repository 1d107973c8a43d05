"""`python -m pipeline score`: a directory of new, unlabeled images scored in batch by
TFX's BulkInferrer with a blessed model.

1. A Beam pipeline (the config's runner and flags, so Dataflow/Flink/Spark too) turns
   the directory into TFX Examples, refusing with the reason what the model would
   refuse (`components.scoring.unlabeled_images`).
2. The model, the newest pushed version unless `--model` names one, is saved as its
   scoring model (`components.scoring.scoring_model`: the same computation without
   the string output BulkInferrer cannot split).
3. A small TFX pipeline, two Importers and BulkInferrer, runs inference with the
   `serving_examples` signature; its ML Metadata stays in the work folder.
4. The PredictionLogs become `predictions.jsonl`: the image's id (file name, or
   `<batch>:<index>`), the class id and name, the probabilities and the model version;
   `refused.jsonl` names each refused file with its reason.

Everything goes to `<output dir>/scores/<UTC time>/`, built beside its place and
renamed into it whole.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import time
from typing import Callable, Optional

from components import console
from components.contract import (CLASS_NAMES, EXAMPLES_INPUT, EXAMPLES_SIGNATURE,
                                 IMAGE_ID_KEY, PROBABILITIES_OUTPUT, SAVED_MODEL_FILE,
                                 newest_version, ready_versions)
from components.data.split_files import split_records
from components.scoring.unlabeled_images import (ACCEPTED_COUNTER, IMAGES_SPLIT,
                                                 ScoringInputError, WriteScoringExamples,
                                                 input_files)
from pipeline.report.writer import built_beside, unused_path

SCORES_DIR = "scores"
PREDICTIONS_FILE = "predictions.jsonl"
REFUSED_FILE = "refused.jsonl"
_WORK_DIR = "work"  # inside the scores folder: examples, the scoring model, TFX's files
_SHOWN_REFUSALS = 20


def _check_signature(saved_model_dir: str) -> None:
    """Refuses a SavedModel without the signature BulkInferrer is given."""
    from tensorflow.python.saved_model import loader_impl

    meta_graphs = loader_impl.parse_saved_model(saved_model_dir).meta_graphs
    if not any(EXAMPLES_SIGNATURE in meta_graph.signature_def for meta_graph in meta_graphs):
        raise ScoringInputError(f"{saved_model_dir}: no {EXAMPLES_SIGNATURE!r} signature to "
                                f"score with (is it a model this pipeline exported?)")


def resolve_model(config, model: Optional[str]) -> tuple:
    """(SavedModel directory, version number or None) to score with: `model` (a
    version directory, or a model base path whose newest version is taken) or the
    newest version pushed under the config's serving model base path."""
    if model is None:
        base_path = config.serving_model_base_path
        newest = newest_version(base_path)
        if newest is None:
            raise ScoringInputError(f"{os.path.abspath(base_path)}: no pushed model to score "
                                    f"with (run the pipeline first, or give --model)")
        _check_signature(newest)
        return newest, int(os.path.basename(newest))
    if os.path.isfile(os.path.join(model, SAVED_MODEL_FILE)):
        _check_signature(model)
        name = os.path.basename(os.path.normpath(model))
        return model, int(name) if name.isdigit() else None
    newest = newest_version(model)
    if newest is None:
        raise ScoringInputError(f"--model {model}: neither a SavedModel directory nor a "
                                f"model base path holding a version "
                                f"({sorted(ready_versions(model)) or 'none found'})")
    _check_signature(newest)
    return newest, int(os.path.basename(newest))


def _write_examples(config, files: list, examples_uri: str, refused_prefix: str) -> int:
    """Runs the Beam step; returns how many images it accepted."""
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    pipeline = beam.Pipeline(options=PipelineOptions(config.beam.pipeline_args()))
    _ = pipeline | "ScoringExamples" >> WriteScoringExamples(files, examples_uri,
                                                             refused_prefix)
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name(ACCEPTED_COUNTER))["counters"]
    if not counters:  # a runner that reports no metrics: count what was written
        return sum(1 for _ in split_records(examples_uri, IMAGES_SPLIT))
    return sum(counter.committed or counter.attempted or 0 for counter in counters)


def _bulk_inference(config, work_dir: str, examples_uri: str, model_uri: str) -> str:
    """Runs BulkInferrer; returns its InferenceResult artifact's URI."""
    from tfx import v1 as tfx
    from tfx.orchestration import metadata

    examples = tfx.dsl.Importer(
        source_uri=examples_uri, artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": json.dumps([IMAGES_SPLIT])}).with_id("ImportExamples")
    model = tfx.dsl.Importer(
        source_uri=model_uri, artifact_type=tfx.types.standard_artifacts.Model
    ).with_id("ImportModel")
    bulk_inferrer = tfx.components.BulkInferrer(
        examples=examples.outputs["result"], model=model.outputs["result"],
        data_spec=tfx.proto.DataSpec(example_splits=[IMAGES_SPLIT]),
        model_spec=tfx.proto.ModelSpec(model_signature_name=[EXAMPLES_SIGNATURE]))
    scoring = tfx.dsl.Pipeline(
        pipeline_name=f"{config.pipeline_name}-score",
        pipeline_root=os.path.join(work_dir, "pipeline_root"),
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            os.path.join(work_dir, "metadata.sqlite")),
        components=[examples, model, bulk_inferrer],
        beam_pipeline_args=config.beam.pipeline_args(), enable_cache=False)
    tfx.orchestration.LocalDagRunner().run(scoring)
    (result_uri,) = glob.glob(os.path.join(work_dir, "pipeline_root", "BulkInferrer",
                                           "inference_result", "*"))
    return result_uri


def predictions(inference_result_uri: str, version: Optional[int]):
    """One dict per scored image from BulkInferrer's PredictionLogs."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    for path in sorted(glob.glob(os.path.join(inference_result_uri, "prediction_logs-*"))):
        for serialized in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            log = prediction_log_pb2.PredictionLog.FromString(serialized.numpy()).predict_log
            example = tf.train.Example.FromString(
                log.request.inputs[EXAMPLES_INPUT].string_val[0])
            probabilities = tf.make_ndarray(log.response.outputs[PROBABILITIES_OUTPUT])[0]
            class_id = int(probabilities.argmax())
            yield {"image": example.features.feature[IMAGE_ID_KEY].bytes_list.value[0].decode(),
                   "class_id": class_id, "class_name": CLASS_NAMES[class_id],
                   "probabilities": [round(float(value), 6) for value in probabilities],
                   "model_version": version}


def _read_refused(prefix: str) -> list:
    refused = []
    for path in sorted(glob.glob(f"{prefix}*.jsonl")):
        with open(path) as lines:
            refused += [json.loads(line) for line in lines if line.strip()]
    return sorted(refused, key=lambda item: item["image"])


def scores_root(config) -> str:
    """Where every scoring run's folder goes (and its work, TFX's artifacts included)."""
    return os.path.join(os.path.abspath(config.output_dir), SCORES_DIR)


def score(config, data_dir: str, model: Optional[str] = None,
          on_start: Optional[Callable[[], None]] = None) -> dict:
    """Scores the images in `data_dir`; returns the summary (where the files are,
    how many were scored and refused). `on_start` is called once the directory and
    the model are found."""
    from components.scoring.scoring_model import write_scoring_model

    from pipeline import staging

    files = input_files(data_dir)
    saved_model_dir, version = resolve_model(config, model)
    if on_start is not None:
        on_start()
    config = staging.staged(config)
    folder = unused_path(os.path.join(scores_root(config),
                                      time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))
    started = time.monotonic()
    with built_beside(folder) as building:
        work_dir = os.path.join(building, _WORK_DIR)
        examples_uri = os.path.join(work_dir, "examples")
        refused_prefix = os.path.join(work_dir, "refused")
        console.report(f"Examining {len(files):,} files in {data_dir}")
        accepted = _write_examples(config, files, examples_uri, refused_prefix)
        refused = _read_refused(refused_prefix)
        scored = 0
        with open(os.path.join(building, PREDICTIONS_FILE), "w") as predictions_file:
            if accepted:
                console.report(f"Scoring {accepted:,} images with {saved_model_dir} "
                                f"(TFX BulkInferrer)")
                model_uri = os.path.join(work_dir, "model")
                write_scoring_model(saved_model_dir, model_uri)
                result_uri = _bulk_inference(config, work_dir, examples_uri, model_uri)
                for prediction in predictions(result_uri, version):
                    predictions_file.write(json.dumps(prediction) + "\n")
                    scored += 1
        with open(os.path.join(building, REFUSED_FILE), "w") as refused_file:
            refused_file.writelines(json.dumps(item) + "\n" for item in refused)
        # The examples and the scoring model were the means; the two files are the result.
        shutil.rmtree(work_dir)
    return {"model": os.path.abspath(saved_model_dir), "model_version": version,
            "scored": scored, "refused": refused, "seconds": round(time.monotonic() - started, 1),
            "predictions": os.path.abspath(os.path.join(folder, PREDICTIONS_FILE)),
            "refused_file": os.path.abspath(os.path.join(folder, REFUSED_FILE))}


def print_summary(summary: dict) -> None:
    console.report(f"Scored {summary['scored']:,} images with version "
                    f"{summary['model_version']} in {summary['seconds']:.0f} s; refused "
                    f"{len(summary['refused']):,}")
    for item in summary["refused"][:_SHOWN_REFUSALS]:
        console.report(f"  refused {item['image']}: {item['reason']}")
    if len(summary["refused"]) > _SHOWN_REFUSALS:
        console.report(f"  ... and {len(summary['refused']) - _SHOWN_REFUSALS:,} more in "
                        f"{summary['refused_file']}")
    console.report(f"Predictions: {summary['predictions']}")
