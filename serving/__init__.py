"""The model server and its tools, with TensorFlow but without TFX: TF Serving's REST and
gRPC APIs over a model base path, version labels, request limits, metrics and request
logging, the load check, the proxy that logs a real TF Serving's traffic, the client,
and the TFLite runner (`python -m serving`)."""
