"""TF Serving's gRPC API over a ModelStore, from tensorflow-serving-api's own protos:
PredictionService.Predict / Classify / GetModelMetadata and ModelService.GetModelStatus.
"""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Optional

import grpc
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, prediction_service_pb2_grpc)

from tensorflow.core.framework import types_pb2

from components.contract import EXAMPLES_SIGNATURE
from serving import inference, request_log
from serving.errors import ServingError, invalid
from serving.limits import Limits
from serving.metrics import CLASSIFY, METADATA, PREDICT, STATUS, RequestRecord, ServerMetrics, record_loaded
from serving.model_store import ModelStore
from serving.request_log import RequestLog

_STATES = get_model_status_pb2.ModelVersionStatus.State
# The repeated fields a TensorProto may carry its values in (besides tensor_content).
_VALUE_FIELDS = ("half_val", "float_val", "double_val", "int_val", "string_val",
                 "scomplex_val", "int64_val", "bool_val", "dcomplex_val", "uint32_val",
                 "uint64_val")


def _dtype_name(dtype: int) -> str:
    # The enum is open: a client can send a number no DataType has.
    return (types_pb2.DataType.Name(dtype) if dtype in types_pb2.DataType.values()
            else f"an unknown dtype ({dtype})")


def _model(model_spec) -> tuple:
    """(model name, requested version or None, requested label or None) of a request's
    model_spec."""
    if not model_spec.name:
        raise invalid("model_spec.name is empty: name the model to call")
    return (model_spec.name,
            model_spec.version.value if model_spec.HasField("version") else None,
            model_spec.version_label if model_spec.HasField("version_label") else None)


def checked_ndarray(name: str, proto, spec: tf.TensorSpec, max_elements: int,
                    max_batch_size: int):
    """A TensorProto as a numpy array, after checking what it declares against what it
    holds: the signature's dtype, a known shape of at most `max_elements` elements, and
    exactly that many values. (make_ndarray alone would fill a huge declared shape from
    one value, or from none.)"""
    if proto.dtype != spec.dtype.as_datatype_enum:
        raise invalid(f"input {name!r}: dtype {_dtype_name(proto.dtype)}, but the signature "
                      f"takes {_dtype_name(spec.dtype.as_datatype_enum)}")
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input {name!r}: the tensor's shape is unknown")
    dims = [dim.size for dim in proto.tensor_shape.dim]
    if any(size < 0 for size in dims):
        raise invalid(f"input {name!r}: shape {dims} has a negative dimension")
    if dims and dims[0] > max_batch_size:
        raise invalid(f"input {name!r}: a batch of {dims[0]}, over the limit of "
                      f"{max_batch_size} per request")
    elements = 1
    for size in dims:
        elements *= size
        if elements > max_elements:
            raise invalid(f"input {name!r}: shape {dims} declares more than {max_elements} "
                          f"elements")
    if proto.tensor_content:
        expected_bytes = elements * spec.dtype.size
        if len(proto.tensor_content) != expected_bytes:
            raise invalid(f"input {name!r}: shape {dims} needs {expected_bytes} bytes of "
                          f"tensor_content, got {len(proto.tensor_content)}")
    else:
        values = sum(len(getattr(proto, field)) for field in _VALUE_FIELDS)
        if values != elements:
            raise invalid(f"input {name!r}: shape {dims} declares {elements} values, the "
                          f"tensor holds {values}")
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, OverflowError) as error:
        raise invalid(f"input {name!r}: the TensorProto cannot be read: {error}") from None


def _aborts_on_serving_error(method):
    """Answers a ServingError with its status code, and counts every call in the
    server's metrics (the method fills in the record as it learns the version)."""
    def wrapper(self, request, context):
        record, code = RequestRecord(api="grpc", method=_METHODS[method.__name__]), "OK"
        try:
            record.model = self.metrics.known_model(request.model_spec.name)
            return method(self, request, context, record)
        except ServingError as error:
            code = error.code
            context.abort(error.grpc_status, error.message)
        except Exception as error:  # a bug, not the client's fault: no traceback out
            code = "INTERNAL"
            print(f"gRPC: {method.__name__} failed: {error!r}"[:500], flush=True)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__})")
        finally:
            self.metrics.observe(record, code)
    wrapper.__name__ = method.__name__
    return wrapper


# The same method names as the REST API's, so that both count into the same series.
_METHODS = {"Predict": PREDICT, "Classify": CLASSIFY, "GetModelMetadata": METADATA,
            "GetModelStatus": STATUS}


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):

    def __init__(self, store: ModelStore, limits: Limits,
                 slots: Optional[threading.Semaphore] = None,
                 metrics: Optional[ServerMetrics] = None,
                 request_log: Optional[RequestLog] = None):
        self.store = store
        self.limits = limits
        self.slots = slots or limits.inference_slots()
        self.metrics = metrics or ServerMetrics(store)
        self.request_log = request_log

    @_aborts_on_serving_error
    def Predict(self, request, context, record):  # noqa: N802 (the proto's method names)
        loaded = self.store.get(*_model(request.model_spec))
        signature_name, function = inference.signature(loaded,
                                                       request.model_spec.signature_name)
        record_loaded(record, loaded, signature_name)
        specs = inference.input_specs(function)
        # Inputs the signature does not take are named by inference.run.
        inputs = {key: checked_ndarray(key, proto, specs[key], self.limits.max_request_bytes,
                                       self.limits.max_batch_size)
                  if key in specs else None for key, proto in request.inputs.items()}
        signature_name, outputs = inference.run(loaded, request.model_spec.signature_name,
                                                inputs, list(request.output_filter),
                                                limits=self.limits, slots=self.slots)
        response = inference.predict_response(request.model_spec.name, loaded.version,
                                              signature_name, outputs)
        if self.request_log is not None:
            self.request_log.offer(lambda: request_log.record_of(request, response))
        return response

    @_aborts_on_serving_error
    def Classify(self, request, context, record):  # noqa: N802
        loaded = self.store.get(*_model(request.model_spec))
        record_loaded(record, loaded, request.model_spec.signature_name or EXAMPLES_SIGNATURE)
        kind = request.input.WhichOneof("kind")
        if kind == "example_list":
            examples = list(request.input.example_list.examples)
        elif kind == "example_list_with_context":
            with_context = request.input.example_list_with_context
            # Counted before the context is copied into each of them.
            self.limits.check_batch(len(with_context.examples), "examples")
            examples = []
            for example in with_context.examples:
                merged = tf.train.Example()
                merged.CopyFrom(with_context.context)
                merged.MergeFrom(example)
                examples.append(merged)
        else:
            raise invalid("ClassificationRequest.input holds no examples")
        if not examples:
            raise invalid("ClassificationRequest.input holds no examples")
        self.limits.check_batch(len(examples), "examples")
        results = inference.classify(loaded, [e.SerializeToString() for e in examples],
                                     request.model_spec.signature_name or None,
                                     limits=self.limits, slots=self.slots)
        response = inference.classification_response(
            request.model_spec.name, loaded.version,
            request.model_spec.signature_name or EXAMPLES_SIGNATURE, results)
        if self.request_log is not None:
            self.request_log.offer(lambda: request_log.record_of(request, response))
        return response

    @_aborts_on_serving_error
    def GetModelMetadata(self, request, context, record):  # noqa: N802
        unsupported = set(request.metadata_field) - {"signature_def"}
        if unsupported or not request.metadata_field:
            raise invalid(f"metadata_field must be [\"signature_def\"], got "
                          f"{list(request.metadata_field)}")
        loaded = self.store.get(*_model(request.model_spec))
        record_loaded(record, loaded)
        signature_def_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in loaded.signature_defs.items():
            signature_def_map.signature_def[key].CopyFrom(value)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.version.value = loaded.version
        response.metadata["signature_def"].Pack(signature_def_map)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):

    def __init__(self, store: ModelStore, metrics: Optional[ServerMetrics] = None):
        self.store = store
        self.metrics = metrics or ServerMetrics(store)

    @_aborts_on_serving_error
    def GetModelStatus(self, request, context, record):  # noqa: N802
        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.store.statuses(*_model(request.model_spec)):
            version_status = response.model_version_status.add()
            version_status.version = status.version
            version_status.state = _STATES.Value(status.state)
            if status.error_message:
                version_status.status.error_code = 2  # tensorflow.error.UNKNOWN
                version_status.status.error_message = status.error_message
        return response


def start(store: ModelStore, host: str, port: int, limits: Limits = Limits(),
          slots: Optional[threading.Semaphore] = None,
          metrics: Optional[ServerMetrics] = None,
          request_log: Optional[RequestLog] = None) -> tuple:
    """Starts the gRPC server; returns (server, bound port). Messages over
    `limits.max_request_bytes` are refused by gRPC itself with RESOURCE_EXHAUSTED, the
    same limit as REST's. With `request_log`, a sample of the answered predict and
    classify requests is logged."""
    # RPCs past max_connections in flight get RESOURCE_EXHAUSTED instead of queueing.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=limits.grpc_workers),
                         maximum_concurrent_rpcs=limits.max_connections,
                         options=[
                             ("grpc.max_receive_message_length", limits.max_request_bytes),
                             ("grpc.max_send_message_length", limits.max_request_bytes),
                         ])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(store, limits, slots, metrics, request_log), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(store, metrics),
                                                              server)
    bound_port = server.add_insecure_port(f"{host}:{port}")
    if bound_port == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port}")
    server.start()
    return server, bound_port
