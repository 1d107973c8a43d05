"""Loads a model version the way TF Serving does, and checks that it then serves.

TF Serving, TFX's InfraValidator and BulkInferrer, and `saved_model_cli run` all load a
SavedModel with TensorFlow's LoadSavedModel: import the MetaGraph, run the saver's
restore op and the init op, then `Session.run` a signature's input and output tensors
by their names in the SignatureDef. `tf.saved_model.load` (what TFMA and the embedded
server use) takes another path, through the object graph, so a SavedModel can run there
and fail every request in TF Serving: a Keras 3 model saved as an attribute of a
`tf.Module` does ("Could not find variable prep_bn/beta", tensorflow/serving#2226).

`check_version` takes TF Serving's path in a graph and session of its own:
1. `tf.compat.v1.saved_model.loader.load` (restore op, then init op);
2. every variable the signatures read must hold a value afterwards. One that does not
   is never restored by the saver: TF Serving fails every request that reaches it
   ("Could not find variable ..."). They are named, before any request runs.
3. the warmup file's requests are replayed through `Session.run` (TF Serving does so
   before the version is AVAILABLE; InfraValidator's LOAD_AND_QUERY sends requests);
4. each signature the contract names gets one request with a black 32x32 image, so
   the signatures the warmup file leaves out are run too.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Dict, List, Optional

from components.contract import (CLASS_IDS_OUTPUT, CLASS_NAMES_OUTPUT, DEFAULT_SIGNATURE,
                                 EXAMPLES_INPUT, EXAMPLES_SIGNATURE, IMAGE_KEY, IMAGE_SHAPE,
                                 IMAGES_INPUT, PIXELS_INPUT, PIXELS_SIGNATURE,
                                 PROBABILITIES_OUTPUT)
from serving import warmup
from serving.errors import root_cause

# What TF Serving's SavedModel bundle loads: the MetaGraph tagged "serve".
SERVE_TAG = "serve"
# Variables named in one message at most; the count says how many more.
_NAMED_VARIABLES = 8


class _LoaderDeprecationNotice(logging.Filter):
    """Drops TensorFlow's notice that its TF1 loader is deprecated: loading the way TF
    Serving does is this module's purpose, so the notice leaves nothing to act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "(from tensorflow.python.saved_model.loader_impl) is deprecated" not in \
            record.getMessage()


_LOADER_DEPRECATION_NOTICE = _LoaderDeprecationNotice()


class LoadCheckError(RuntimeError):
    """The version fails under TF Serving's loader; the message says where and why."""


@dataclasses.dataclass
class LoadCheck:
    path: str
    seconds: float
    variables: int  # the variables the signatures read, all restored
    warmup_requests: int
    signatures_queried: List[str]


def _probe_requests() -> Dict[str, Dict[str, object]]:
    """One request per contract signature, each a black 32x32 image in that
    signature's input form."""
    import numpy as np
    import tensorflow as tf

    pixels = np.zeros((1,) + IMAGE_SHAPE, np.uint8)
    png = tf.io.encode_png(pixels[0]).numpy()
    example = tf.train.Example(features=tf.train.Features(feature={
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png]))}))
    return {
        DEFAULT_SIGNATURE: {IMAGES_INPUT: np.array([png], dtype=object)},
        EXAMPLES_SIGNATURE: {EXAMPLES_INPUT: np.array([example.SerializeToString()],
                                                      dtype=object)},
        PIXELS_SIGNATURE: {PIXELS_INPUT: pixels},
    }


class _SessionModel:
    """A version loaded by TensorFlow's TF1 loader, run by signature name."""

    def __init__(self, graph, session, meta_graph, path: str):
        self.graph, self.session, self.meta_graph, self.path = graph, session, meta_graph, path

    def read_variables(self) -> list:
        """The variable handles the signatures read: VarHandleOps the signatures'
        outputs depend on (a captured variable is an input of the signature's call op).
        A SavedModel may hold others that nothing serves from."""
        import tensorflow as tf

        # Element names: a tensor, or an op for the init op's `__saved_model_init_op`.
        elements = [self.graph.as_graph_element(info.name, allow_operation=True)
                    for signature_def in self.meta_graph.signature_def.values()
                    for info in signature_def.outputs.values()]
        pending = [element.op if isinstance(element, tf.Tensor) else element
                   for element in elements]
        seen, handles = set(), []
        while pending:
            op = pending.pop()
            if op.name in seen:
                continue
            seen.add(op.name)
            if op.type == "VarHandleOp":
                handles.append(op)
            pending.extend(tensor.op for tensor in op.inputs)
            pending.extend(op.control_inputs)
        return handles

    def uninitialized_variables(self, handles: list) -> List[str]:
        import tensorflow as tf

        with self.graph.as_default():
            flags = [tf.raw_ops.VarIsInitializedOp(resource=op.outputs[0]) for op in handles]
        initialized = self.session.run(flags) if flags else []
        return [op.get_attr("shared_name").decode() or op.name
                for op, ready in zip(handles, initialized) if not ready]

    def run(self, signature_name: str, inputs: Dict[str, object],
            output_filter=()) -> Dict[str, object]:
        signature_name = signature_name or DEFAULT_SIGNATURE
        signatures = self.meta_graph.signature_def
        if signature_name not in signatures:
            raise LoadCheckError(f"{self.path}: no signature {signature_name!r} "
                                 f"(it has {sorted(signatures)})")
        signature_def = signatures[signature_name]
        unknown = sorted(set(inputs) - set(signature_def.inputs))
        if unknown:
            raise LoadCheckError(f"{self.path}: signature {signature_name!r} has no inputs "
                                 f"{unknown} (it takes {sorted(signature_def.inputs)})")
        feed = {signature_def.inputs[key].name: value for key, value in inputs.items()}
        fetches = {key: info.name for key, info in signature_def.outputs.items()
                   if not output_filter or key in output_filter}
        return self.session.run(fetches, feed)


def _root_cause(error: Exception) -> str:
    return root_cause(getattr(error, "message", None) or str(error))


def _replay_warmup(model: _SessionModel, path: str, requests: list,
                   slots: Optional[threading.Semaphore]) -> int:
    import contextlib

    import tensorflow as tf

    replayed = 0
    for kind, request in requests:
        if kind == "predict":
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            signature_name = request.model_spec.signature_name
            output_filter = list(request.output_filter)
        else:  # the Classify API runs the tf.Example signature (serving.inference)
            import numpy as np
            inputs = {EXAMPLES_INPUT: np.array(
                [example.SerializeToString() for example in
                 request.input.example_list.examples], dtype=object)}
            signature_name = request.model_spec.signature_name or EXAMPLES_SIGNATURE
            output_filter = ()
        try:
            with slots or contextlib.nullcontext():
                model.run(signature_name, inputs, output_filter)
        except tf.errors.OpError as error:
            raise LoadCheckError(f"{path}: record {replayed + 1} was refused by the model "
                                 f"under TF Serving's loader: signature {signature_name!r} "
                                 f"rejected the input: {_root_cause(error)}") from None
        replayed += 1
    return replayed


def _query_signatures(model: _SessionModel, probes: dict,
                      slots: Optional[threading.Semaphore]) -> List[str]:
    import contextlib

    import numpy as np
    import tensorflow as tf

    queried = []
    for signature_name, inputs in probes.items():
        if signature_name not in model.meta_graph.signature_def:
            continue
        try:
            with slots or contextlib.nullcontext():
                outputs = model.run(signature_name, inputs)
        except tf.errors.OpError as error:
            raise LoadCheckError(f"{model.path}: signature {signature_name!r} fails under "
                                 f"TF Serving's loader on a black 32x32 image: "
                                 f"{type(error).__name__}: {_root_cause(error)}") from None
        missing = {CLASS_IDS_OUTPUT, CLASS_NAMES_OUTPUT, PROBABILITIES_OUTPUT} - set(outputs)
        if missing:
            raise LoadCheckError(f"{model.path}: signature {signature_name!r} lacks the "
                                 f"outputs {sorted(missing)}")
        if not np.all(np.isfinite(outputs[PROBABILITIES_OUTPUT])):
            raise LoadCheckError(f"{model.path}: signature {signature_name!r} returns "
                                 f"non-finite probabilities for a black image")
        queried.append(signature_name)
    return queried


def check_version(path: str, slots: Optional[threading.Semaphore] = None) -> LoadCheck:
    """Loads the SavedModel at `path` as TF Serving does and runs its warmup requests
    and one request per contract signature; raises LoadCheckError naming what fails.
    The model runs inside one of `slots` at a time, as client requests do."""
    import tensorflow as tf

    logging.getLogger("tensorflow").addFilter(_LOADER_DEPRECATION_NOTICE)
    started = time.monotonic()
    # Read eagerly, before the session's graph is the default one.
    warmup_path = warmup.warmup_file(path)
    try:
        warmup_requests = list(warmup.read_requests(warmup_path)) if warmup_path else []
    except warmup.WarmupError as error:
        raise LoadCheckError(str(error)) from None
    probes = _probe_requests()
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        try:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, [SERVE_TAG], path)
        except (tf.errors.OpError, OSError, RuntimeError, ValueError) as error:
            raise LoadCheckError(f"{path}: TF Serving's loader cannot load it: "
                                 f"{type(error).__name__}: {_root_cause(error)}") from None
        model = _SessionModel(graph, session, meta_graph, path)
        handles = model.read_variables()
        missing = model.uninitialized_variables(handles)
        if missing:
            more = (f" and {len(missing) - _NAMED_VARIABLES} more"
                    if len(missing) > _NAMED_VARIABLES else "")
            raise LoadCheckError(
                f"{path}: {len(missing)} variables are not restored by TF Serving's loader "
                f"({', '.join(missing[:_NAMED_VARIABLES])}{more}); TF Serving fails every "
                f"request with \"Could not find variable {missing[0]}\"")
        replayed = _replay_warmup(model, warmup_path, warmup_requests, slots)
        queried = _query_signatures(model, probes, slots)
    return LoadCheck(path=path, seconds=time.monotonic() - started, variables=len(handles),
                     warmup_requests=replayed, signatures_queried=queried)
