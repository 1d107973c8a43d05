"""Warm start: the weights of the last pushed model, read into a fresh training model.

Only the model's weights are read. Exports made before the ExportArchive also hold
the optimizer they were trained with; restoring its step counter would shift the new
run's learning-rate schedule.
"""

from __future__ import annotations

import os
from typing import Optional

import keras
import tensorflow as tf

from components.contract import MODEL_VARIABLES_KEY, newest_version


def newest_pushed_model(base_path: str) -> Optional[str]:
    """The newest complete version directory under a TF Serving model base path
    (local or remote), or None when nothing was pushed there yet."""
    if not tf.io.gfile.isdir(base_path):
        return None
    return newest_version(base_path, tf.io.gfile.listdir, tf.io.gfile.exists)


def _mismatch(saved_model_dir: str, model: keras.Model, detail: str) -> ValueError:
    return ValueError(f"{saved_model_dir}: cannot warm-start a {model.name} from this "
                      f"model, its weights do not fit ({detail})")


def read_weights_from_saved_model(model: keras.Model, saved_model_dir: str) -> list:
    """The weights of the Keras model inside a SavedModel this Trainer exported, read
    through `model`, a fresh model of the same architecture; returns them as
    `model.get_weights()` lists them.

    Two layouts are read:
    - the ExportArchive's (`components.export.saved_model`): the root's `MODEL_VARIABLES_KEY`
      collection, the model's variables in `model.variables` order, matched by index
      and shape;
    - the serving module's of earlier exports (`model/...` in the checkpoint, with the
      optimizer): matched by their place in the model. Those versions do not run in TF
      Serving, but their weights warm-start as before.
    Another architecture fails with the mismatch named. `model` must be a throwaway: an
    earlier export's checkpoint also holds the old optimizer, which a later `compile` of
    `model` would pick up (its step count would shift the learning-rate schedule).
    """
    checkpoint_path = os.path.join(saved_model_dir, "variables", "variables")
    reader = tf.train.load_checkpoint(checkpoint_path)
    shapes = reader.get_variable_to_shape_map()
    if any(key.startswith("model/") for key in shapes):
        return _read_module_layout(model, saved_model_dir, checkpoint_path, shapes)
    keys = _collection_keys(reader, MODEL_VARIABLES_KEY)
    if len(keys) != len(model.variables):
        raise _mismatch(saved_model_dir, model, f"{len(keys)} saved variables, "
                        f"{len(model.variables)} in the model")
    for index, (variable, key) in enumerate(zip(model.variables, keys)):
        if tuple(shapes[key]) != tuple(variable.shape):
            raise _mismatch(saved_model_dir, model, f"{variable.path} is "
                            f"{tuple(variable.shape)}, the saved variable {index} is "
                            f"{tuple(shapes[key])}")
        variable.assign(reader.get_tensor(key))
    return model.get_weights()


def _collection_keys(reader, collection: str) -> list:
    """The checkpoint keys of a list attribute of the SavedModel's root object, in list
    order, read from the checkpoint's object graph (a variable shared with another
    list is saved once, under whichever path the saver met first)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    children = {child.local_name: child.node_id for child in graph.nodes[0].children}
    if collection not in children:
        return []
    items = sorted(graph.nodes[children[collection]].children,
                   key=lambda child: int(child.local_name))
    return [next(attribute.checkpoint_key for attribute in
                 graph.nodes[item.node_id].attributes
                 if attribute.name == "VARIABLE_VALUE") for item in items]


def _read_module_layout(model: keras.Model, saved_model_dir: str, checkpoint_path: str,
                        shapes: dict) -> list:
    # Shapes first: a failed read leaves pending restores that TF logs one by one.
    saved_shapes = sorted(
        tuple(shape) for key, shape in shapes.items()
        if key.startswith("model/") and "/optimizer/" not in key
        and key.endswith("VARIABLE_VALUE"))
    model_shapes = sorted(tuple(weight.shape) for weight in model.weights)
    if saved_shapes != model_shapes:
        raise _mismatch(saved_model_dir, model, f"{len(saved_shapes)} saved weights, "
                        f"{len(model_shapes)} in the model, or other shapes")
    checkpoint = tf.train.Checkpoint(model=model)
    try:
        status = checkpoint.read(checkpoint_path)
        status.expect_partial()
        status.assert_existing_objects_matched()
        return model.get_weights()
    except (AssertionError, ValueError) as error:
        raise _mismatch(saved_model_dir, model, str(error)[:300]) from None
