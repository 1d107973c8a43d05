"""Batch scoring of unlabeled images with the served model through BulkInferrer
(`python -m pipeline score`)."""
