"""The served model as TFX's BulkInferrer can run it.

BulkInferrer (tfx_bsl's run_inference) splits every output of a predict signature per
example with `tf.as_dtype(output[i].dtype)`; a string output's element is Python
`bytes`, which has no dtype, so the model's `class_names` output fails every batch
("'bytes' object has no attribute 'dtype'"). The scoring model is the served
SavedModel loaded and saved again with one signature, `serving_examples`, that calls
the served model's own `serving_examples` and returns its numeric outputs
(`class_ids`, `probabilities`). The weights, the Transform graph and the computation
are the served version's; class names are added from the contract when the results
are written. Saved as a TFX Model artifact lays it out (`<uri>/Format-Serving`).
"""

from __future__ import annotations

import os

from components.contract import EXAMPLES_INPUT, EXAMPLES_SIGNATURE

SERVING_MODEL_DIR = "Format-Serving"  # tfx.utils.path_utils.serving_model_dir's folder


def write_scoring_model(saved_model_dir: str, model_uri: str) -> str:
    """Writes the scoring model of the SavedModel at `saved_model_dir` into the Model
    artifact folder `model_uri`; returns the SavedModel's directory."""
    import tensorflow as tf

    served = tf.saved_model.load(saved_model_dir)
    if EXAMPLES_SIGNATURE not in served.signatures:
        raise ValueError(f"{saved_model_dir}: no {EXAMPLES_SIGNATURE!r} signature to score "
                         f"with (signatures: {', '.join(served.signatures)})")
    served_examples = served.signatures[EXAMPLES_SIGNATURE]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def numeric_outputs(examples):
        outputs = served_examples(**{EXAMPLES_INPUT: examples})
        return {name: value for name, value in outputs.items() if value.dtype != tf.string}

    export_dir = os.path.join(model_uri, SERVING_MODEL_DIR)
    tf.saved_model.save(served, export_dir, signatures={EXAMPLES_SIGNATURE: numeric_outputs})
    return export_dir
