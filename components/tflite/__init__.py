"""On-device export: TensorFlow Lite variants of the trained model, each checked on the
test split against the SavedModel, and pushed beside the served version."""
