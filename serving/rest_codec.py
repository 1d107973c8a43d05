"""The wire format of TF Serving's REST API: its paths, and its JSON (row and columnar
predict inputs, `{"b64": ...}` bytes, classify's features as tf.Examples, bounded
nesting). The embedded server and the proxy in front of TF Serving read requests
through it alike."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Optional

import numpy as np

from serving.errors import invalid
from serving.limits import Limits
from serving.metrics import CLASSIFY, METADATA, PREDICT, STATUS

# The API's paths, and the method each suffix names.
METHOD_OF_SUFFIX = {None: STATUS, "/metadata": METADATA, ":predict": PREDICT,
                    ":classify": CLASSIFY}
MODEL_PATH = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:predict|:classify|:regress)?$")


def decode_b64(value):
    """Replaces every {"b64": ...} object in a JSON value by its bytes."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                raise invalid("a {\"b64\": ...} value is not valid base64") from None
        return {key: decode_b64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_b64(item) for item in value]
    return value


def json_value(array: np.ndarray, output_name: str):
    """A numpy output as TF Serving writes it: strings as text unless the output's name
    ends in `_bytes` (or they are not UTF-8), then as {"b64": ...}."""
    if array.dtype == object or array.dtype.kind == "S":
        def convert(item):
            if isinstance(item, bytes):
                if not output_name.endswith("_bytes"):
                    try:
                        return item.decode("utf-8")
                    except UnicodeDecodeError:
                        pass
                return {"b64": base64.b64encode(item).decode("ascii")}
            return [convert(sub) for sub in item]
        return [convert(item) for item in array.tolist()] if array.ndim else convert(
            array.item())
    return array.tolist()


def predict_inputs(body: dict, input_names: list) -> tuple:
    if ("instances" in body) == ("inputs" in body):
        raise invalid("the request must have exactly one of \"instances\" (row format) "
                      "or \"inputs\" (columnar format)")
    if "instances" in body:
        instances = decode_b64(body["instances"])
        if not isinstance(instances, list):
            raise invalid("\"instances\" must be a list")
        if not instances:
            raise invalid("\"instances\" is empty")
        if all(isinstance(row, dict) for row in instances):
            keys = {frozenset(row) for row in instances}
            if len(keys) != 1:
                raise invalid("every instance must name the same inputs")
            return "row", {key: [row[key] for row in instances] for key in next(iter(keys))}
        if len(input_names) != 1:
            raise invalid(f"the signature takes inputs {input_names}: each instance must "
                          f"be an object naming them")
        return "row", {input_names[0]: instances}
    inputs = decode_b64(body["inputs"])
    if isinstance(inputs, dict):
        return "columnar", inputs
    if len(input_names) != 1:
        raise invalid(f"the signature takes inputs {input_names}: \"inputs\" must be an "
                      f"object naming them")
    return "columnar", {input_names[0]: inputs}


def classify_examples(request: dict, limits: Limits) -> list:
    """A REST classify request's examples, each merged with the context, serialized."""
    examples = decode_b64(request.get("examples"))
    if not isinstance(examples, list) or not examples:
        raise invalid("\"examples\" must be a non-empty list of feature objects")
    limits.check_batch(len(examples), "examples")
    context = decode_b64(request.get("context") or {})
    if not isinstance(context, dict):
        raise invalid("\"context\" must be an object of features")
    serialized = []
    for example in examples:
        if isinstance(example, dict) and set(example) & set(context):
            raise invalid(f"features {sorted(set(example) & set(context))} appear in "
                          f"both the context and an example")
        serialized.append(_example_from_json({**context, **example}
                                             if isinstance(example, dict) else example))
    return serialized


def _example_from_json(features: dict) -> bytes:
    import tensorflow as tf

    if not isinstance(features, dict):
        raise invalid("each entry of \"examples\" must be an object of features")
    feature_map = {}
    for key, value in features.items():
        values = value if isinstance(value, list) else [value]
        if all(isinstance(item, (bytes, str)) for item in values):
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[
                item if isinstance(item, bytes) else item.encode() for item in values]))
        elif all(isinstance(item, int) and not isinstance(item, bool) for item in values):
            feature = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        elif all(isinstance(item, (int, float)) for item in values):
            feature = tf.train.Feature(float_list=tf.train.FloatList(value=values))
        else:
            raise invalid(f"feature {key!r}: values must all be strings, all integers or "
                          f"all numbers")
        feature_map[key] = feature
    return tf.train.Example(features=tf.train.Features(feature=feature_map)).SerializeToString()


def json_depth(value) -> int:
    """How deeply lists and objects nest in a parsed JSON value (a scalar is 0)."""
    depth, level = 0, [(value, 1)]
    while level:
        item, item_depth = level.pop()
        children = item.values() if isinstance(item, dict) else (
            item if isinstance(item, list) else ())
        if isinstance(item, (dict, list)):
            depth = max(depth, item_depth)
            level.extend((child, item_depth + 1) for child in children)
    return depth


def parse_json_body(body: Optional[bytes], max_depth: int) -> dict:
    """The request body as a JSON object, refused when malformed or nested too deeply."""
    try:
        request = json.loads(body or b"")
    except RecursionError:  # deeper than the parser's own stack allows
        raise invalid(f"the request body nests deeper than the limit of {max_depth} "
                      f"levels") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid(f"the request body is not valid JSON: {error}") from None
    depth = json_depth(request)
    if depth > max_depth:
        raise invalid(f"the request body nests {depth} levels deep, over the limit of "
                      f"{max_depth}")
    if not isinstance(request, dict):
        raise invalid("the request body must be a JSON object")
    return request
