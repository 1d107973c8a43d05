"""Runs a served version's signatures on request tensors: the part REST and gRPC share.

Inputs are checked against the signature (names, dtype, shape, a non-empty batch)
before the model runs; what the model itself rejects (bytes that are not an image, an
image that is not 32x32) comes back as INVALID_ARGUMENT with TensorFlow's message.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2

from components.contract import (CLASS_NAMES, DEFAULT_SIGNATURE, EXAMPLES_SIGNATURE,
                                 PROBABILITIES_OUTPUT)
from serving.errors import invalid, root_cause
from serving.limits import Limits
from serving.loaded_version import LoadedVersion


def signature(loaded: LoadedVersion, signature_name: str):
    name = signature_name or DEFAULT_SIGNATURE
    if name not in loaded.signatures:
        raise invalid(f"Serving signature name: \"{name}\" not found in signature def "
                      f"(available: {', '.join(sorted(loaded.signatures))})")
    return name, loaded.signatures[name]


def input_specs(function) -> Dict[str, tf.TensorSpec]:
    return dict(function.structured_input_signature[1])


def _as_tensor(name: str, value, spec: tf.TensorSpec) -> tf.Tensor:
    try:
        if spec.dtype == tf.string:
            array = np.asarray(value, dtype=object)
            if array.size and not all(isinstance(item, (bytes, str)) for item in array.flat):
                raise ValueError("expected strings or {\"b64\": ...} objects")
            tensor = tf.constant(array if array.size else np.zeros(array.shape, object),
                                 dtype=tf.string)
        else:
            array = np.asarray(value)
            if array.dtype == object or array.dtype.kind in "SUO":
                raise ValueError("expected numbers")
            tensor = tf.constant(array, dtype=spec.dtype)
    except (ValueError, TypeError, OverflowError) as error:
        raise invalid(f"input {name!r}: cannot be read as a {spec.dtype.name} tensor "
                      f"(ragged or mistyped values): {error}") from None
    if not spec.shape.is_compatible_with(tensor.shape):
        raise invalid(f"input {name!r}: shape {tensor.shape.as_list()} does not match "
                      f"the signature's {spec.shape}")
    if tensor.shape.rank and tensor.shape[0] == 0:
        raise invalid(f"input {name!r}: the batch is empty")
    return tensor


def run(loaded: LoadedVersion, signature_name: str, inputs: Dict[str, object],
        output_filter: Sequence[str] = (), limits: Optional[Limits] = None,
        slots: Optional[threading.Semaphore] = None) -> Tuple[str, Dict[str, np.ndarray]]:
    """Runs a signature; returns its name and the outputs as numpy arrays. With `limits`,
    a batch over its max_batch_size is refused before the model runs; with `slots`, the
    model runs only while holding one (the others wait)."""
    name, function = signature(loaded, signature_name)
    specs = input_specs(function)
    missing = sorted(set(specs) - set(inputs))
    unknown = sorted(set(inputs) - set(specs))
    if missing or unknown:
        raise invalid(f"signature {name!r} takes inputs {sorted(specs)}; "
                      + (f"missing {missing}" if missing else "")
                      + ("; " if missing and unknown else "")
                      + (f"unknown {unknown}" if unknown else ""))
    tensors = {key: _as_tensor(key, value, specs[key]) for key, value in inputs.items()}
    batch_sizes = {int(t.shape[0]) for t in tensors.values() if t.shape.rank}
    if len(batch_sizes) > 1:
        raise invalid(f"inputs have different batch sizes {sorted(batch_sizes)}")
    if limits is not None and batch_sizes:
        limits.check_batch(max(batch_sizes))
    try:
        with slots or contextlib.nullcontext():
            outputs = function(**tensors)
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        raise invalid(f"signature {name!r} rejected the input: "
                      f"{root_cause(getattr(error, 'message', str(error)))}") from None
    if output_filter:
        unknown_outputs = sorted(set(output_filter) - set(outputs))
        if unknown_outputs:
            raise invalid(f"output_filter names unknown outputs {unknown_outputs} "
                          f"(known: {sorted(outputs)})")
        outputs = {key: outputs[key] for key in output_filter}
    return name, {key: value.numpy() for key, value in outputs.items()}


def classify(loaded: LoadedVersion, serialized_examples: List[bytes],
             signature_name: Optional[str] = None, limits: Optional[Limits] = None,
             slots: Optional[threading.Semaphore] = None) -> List[List[Tuple[str, float]]]:
    """Per example, (class name, probability) for every class, through the model's
    tf.Example signature: the Classify API of a model exported with predict
    signatures. The probabilities are in the contract's class order."""
    name = signature_name or EXAMPLES_SIGNATURE
    _, function = signature(loaded, name)
    (input_name,) = input_specs(function)
    _, outputs = run(loaded, name, {input_name: serialized_examples}, limits=limits,
                     slots=slots)
    if PROBABILITIES_OUTPUT not in outputs:
        raise invalid(f"signature {name!r} has no {PROBABILITIES_OUTPUT!r} output to "
                      f"classify with")
    return [[(CLASS_NAMES[index], float(score)) for index, score in enumerate(scores)]
            for scores in outputs[PROBABILITIES_OUTPUT]]


# The protos of a request and its answer, as gRPC carries them and the request log
# keeps them (REST's JSON is converted to the same).

def predict_request(model_name: str, signature_name: str, inputs: Dict[str, object],
                    specs: Dict[str, tf.TensorSpec]) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value, dtype=specs[key].dtype))
    return request


def predict_response(model_name: str, version: int, signature_name: str,
                     outputs: Dict[str, np.ndarray]) -> predict_pb2.PredictResponse:
    response = predict_pb2.PredictResponse()
    response.model_spec.name = model_name
    response.model_spec.version.value = version
    response.model_spec.signature_name = signature_name
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
    return response


def classification_request(model_name: str, signature_name: str,
                           serialized_examples: List[bytes]
                           ) -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    for serialized in serialized_examples:
        request.input.example_list.examples.add().ParseFromString(serialized)
    return request


def classification_response(model_name: str, version: int, signature_name: str,
                            results: List[List[Tuple[str, float]]]
                            ) -> classification_pb2.ClassificationResponse:
    response = classification_pb2.ClassificationResponse()
    response.model_spec.name = model_name
    response.model_spec.version.value = version
    response.model_spec.signature_name = signature_name
    for scores in results:
        classification = response.result.classifications.add()
        for label, score in scores:
            classification.classes.add(label=label, score=score)
    return response
