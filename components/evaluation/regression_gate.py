"""RegressionGate: the blessing the Pusher obeys.

It runs after the Evaluator and blesses the candidate only when
- the Evaluator blessed it (overall accuracy >= the threshold, TFMA), and
- it is not a regression on the last model this gate blessed, judged image by image
  on the same test split (`components.evaluation.paired`).

Both models are run through their `serving_examples` signature on the raw test split,
as TFMA runs them, so the comparison is of the served models. Beside its blessing
(`BLESSED` / `NOT_BLESSED` and the `blessed` custom property, as the Evaluator writes
them) it leaves `GATE_RESULT_FILE`, the decision with its numbers, and
`GATE_PREDICTIONS_FILE`, the per-image predictions the run report draws on.
"""


import dataclasses
import io
import json
import os
from typing import Optional

import numpy as np
from absl import logging
from tfx import types
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from components.contract import (EXAMPLES_INPUT, EXAMPLES_SIGNATURE, GATE_PREDICTIONS_FILE,
                                 GATE_RESULT_FILE, IMAGE_ID_KEY, LABEL_KEY,
                                 PROBABILITIES_OUTPUT, TEST_SPLIT)
from components.data.split_files import split_records, split_uri
from components.evaluation import paired

# The custom properties and files of a blessing that TFX's Pusher and
# LatestBlessedModelStrategy read, as TFX's Evaluator writes them.
BLESSED_PROPERTY = evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY
CURRENT_MODEL_PROPERTY = evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY
CURRENT_MODEL_ID_PROPERTY = evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY
BASELINE_MODEL_PROPERTY = evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY
BASELINE_MODEL_ID_PROPERTY = evaluator_constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY

_BATCH = 500


def _is_blessed(blessing: types.Artifact) -> bool:
    return (blessing.has_custom_property(BLESSED_PROPERTY)
            and blessing.get_int_custom_property(BLESSED_PROPERTY) == 1)


def read_test_split(examples: types.Artifact) -> tuple:
    """Serialized test examples, their labels and image ids, in file order."""
    import tensorflow as tf

    serialized = [record.numpy() for record in split_records(examples.uri, TEST_SPLIT)]
    if not serialized:
        raise ValueError(f"{split_uri(examples.uri, TEST_SPLIT)}: the test split holds no "
                         f"examples")
    parsed = tf.io.parse_example(serialized, {
        LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
        IMAGE_ID_KEY: tf.io.FixedLenFeature([], tf.string)})
    return (serialized, parsed[LABEL_KEY].numpy(),
            np.array([image_id.decode() for image_id in parsed[IMAGE_ID_KEY].numpy()]))


def predict(model: types.Artifact, serialized: list) -> np.ndarray:
    """Class probabilities of the exported model on serialized tf.Examples."""
    import tensorflow as tf

    serve = tf.saved_model.load(path_utils.serving_model_path(model.uri)).signatures[
        EXAMPLES_SIGNATURE]
    batches = [serve(**{EXAMPLES_INPUT: tf.constant(serialized[start:start + _BATCH])})
               [PROBABILITIES_OUTPUT].numpy()
               for start in range(0, len(serialized), _BATCH)]
    return np.concatenate(batches).astype(np.float32)


def read_predictions(blessing_uri: str) -> Optional[dict]:
    """What GATE_PREDICTIONS_FILE beside a gate blessing holds: `image_id`, `label` and
    `candidate_probabilities` (and `baseline_probabilities` when compared), as arrays;
    None when there is no such file."""
    path = os.path.join(blessing_uri, GATE_PREDICTIONS_FILE)
    if not fileio.exists(path):
        return None
    with fileio.open(path, "rb") as npz_file:
        with np.load(io.BytesIO(npz_file.read())) as arrays:
            return {name: arrays[name] for name in arrays.files}


def decide(labels, candidate_probabilities, baseline_probabilities: Optional[np.ndarray],
           evaluator_blessed: bool, accuracy_threshold: float, confidence: float,
           tolerance: float) -> dict:
    """The gate's decision and the numbers behind it (GATE_RESULT_FILE's content,
    without the model URIs)."""
    candidate_predicted = candidate_probabilities.argmax(axis=1)
    candidate_accuracy = float(np.mean(candidate_predicted == labels))
    reasons = []
    if not evaluator_blessed:
        reasons.append(f"accuracy {candidate_accuracy:.2%} is below the threshold "
                       f"{accuracy_threshold:.2%} (Evaluator)")
    comparison = None
    if baseline_probabilities is not None:
        result = paired.compare(labels, candidate_predicted,
                                baseline_probabilities.argmax(axis=1), confidence, tolerance)
        comparison = dataclasses.asdict(result)
        # JSON has no infinity: confidence 1 gives an unbounded interval, shown as none.
        comparison["difference_interval"] = (
            list(result.difference_interval)
            if all(np.isfinite(result.difference_interval)) else None)
        if result.regression:
            reasons.append(f"regression on the last blessed model: {result.reason}")
    return {
        "blessed": not reasons,
        "evaluator_blessed": evaluator_blessed,
        "accuracy_threshold": accuracy_threshold,
        "candidate": {"accuracy": candidate_accuracy, "test_images": int(len(labels))},
        "baseline": (None if comparison is None
                     else {"accuracy": comparison["baseline_accuracy"]}),
        "comparison": comparison,
        "reasons": reasons,
    }


@component
def RegressionGate(  # noqa: N802 (a TFX component is named like a class)
    model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    evaluation_blessing: InputArtifact[standard_artifacts.ModelBlessing],
    gate_blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    accuracy_threshold: Parameter[float],
    confidence: Parameter[float],
    tolerance: Parameter[float],
    baseline_model: InputArtifact[standard_artifacts.Model] = None,
):
    """Blesses `model` when the Evaluator did and it is no regression on
    `baseline_model` (the last model this gate blessed; none on the first run)."""
    evaluator_blessed = _is_blessed(evaluation_blessing)
    serialized, labels, image_ids = read_test_split(examples)
    candidate_probabilities = predict(model, serialized)
    # Against an unblessed candidate the comparison decides nothing: skip its cost.
    # A candidate that is the baseline (a re-run with cached training) agrees with it.
    baseline_probabilities = None
    if evaluator_blessed and baseline_model is not None:
        baseline_probabilities = (candidate_probabilities if baseline_model.id == model.id
                                  else predict(baseline_model, serialized))
    result = decide(labels, candidate_probabilities, baseline_probabilities,
                    evaluator_blessed, accuracy_threshold, confidence, tolerance)
    result["candidate"]["model"] = model.uri
    if result["baseline"] is not None:
        result["baseline"]["model"] = baseline_model.uri

    arrays = {"image_id": image_ids, "label": labels.astype(np.int64),
              "candidate_probabilities": candidate_probabilities}
    if baseline_probabilities is not None:
        arrays["baseline_probabilities"] = baseline_probabilities
    # A zip needs a seekable file; TFX's file layer (GCS included) gets the bytes.
    npz_bytes = io.BytesIO()
    np.savez_compressed(npz_bytes, **arrays)
    with fileio.open(os.path.join(gate_blessing.uri, GATE_PREDICTIONS_FILE), "wb") as npz_file:
        npz_file.write(npz_bytes.getvalue())
    with fileio.open(os.path.join(gate_blessing.uri, GATE_RESULT_FILE), "w") as result_file:
        json.dump(result, result_file, indent=2)
    verdict = (evaluator_constants.BLESSED_FILE_NAME if result["blessed"]
               else evaluator_constants.NOT_BLESSED_FILE_NAME)
    # A GFile opened and closed unwritten is never created: write the empty marker.
    io_utils.write_string_file(os.path.join(gate_blessing.uri, verdict), "")
    gate_blessing.set_int_custom_property(BLESSED_PROPERTY, int(result["blessed"]))
    gate_blessing.set_string_custom_property(CURRENT_MODEL_PROPERTY, model.uri)
    gate_blessing.set_int_custom_property(CURRENT_MODEL_ID_PROPERTY, model.id)
    if baseline_model is not None:
        gate_blessing.set_string_custom_property(BASELINE_MODEL_PROPERTY, baseline_model.uri)
        gate_blessing.set_int_custom_property(BASELINE_MODEL_ID_PROPERTY, baseline_model.id)
    comparison = result["comparison"]
    logging.info(
        f"RegressionGate: {verdict}; accuracy {result['candidate']['accuracy']:.2%}"
        + (f", baseline {comparison['baseline_accuracy']:.2%} (candidate alone right on "
           f"{comparison['candidate_only_correct']}, baseline alone on "
           f"{comparison['baseline_only_correct']}, p = {comparison['p_value']:.2g})"
           if comparison else ", no baseline")
        + "".join(f"; {reason}" for reason in result["reasons"]))
