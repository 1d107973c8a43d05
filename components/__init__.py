"""The pipeline's stages, one folder each, in the order the pipeline runs them:
data (ExampleGen), validation (statistics, schema, anomalies and the DataGate),
transform (the preprocessing_fn), training (the Trainer), export (the SavedModel the
Trainer writes), evaluation (the Evaluator's gate), push (the Pusher and the TF Serving
load check), tflite (on-device export), and the steps that start from served traffic:
monitoring and scoring.

Beside them, what every stage shares: `contract` (every name that crosses a boundary,
the only module `serving/` may import), `console` (progress lines for the person
watching) and `uris` (paths that may be remote filesystem URIs).
"""
