"""Runs a SavedModel's signatures the way TF Serving does: TensorFlow's own TF1 loader
(`tf.compat.v1.saved_model.loader.load`, which is LoadSavedModel: import the MetaGraph,
run the saver's restore op and the init op) in a Session, then `Session.run` of the
signature's tensors by their names in the SignatureDef. Deliberately not the project's
serving code: the tests check the export against TensorFlow's loader itself."""

from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf


def run_signatures(saved_model_dir: str, feeds: Dict[str, Dict[str, np.ndarray]]
                   ) -> Dict[str, Dict[str, np.ndarray]]:
    """Signature name -> its outputs, for each signature name -> {input name: array}."""
    outputs = {}
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(
            session, [tf.saved_model.SERVING], saved_model_dir)
        for name, inputs in feeds.items():
            signature_def = meta_graph.signature_def[name]
            feed = {signature_def.inputs[key].name: value for key, value in inputs.items()}
            fetches = {key: info.name for key, info in signature_def.outputs.items()}
            outputs[name] = session.run(fetches, feed)
    return outputs
