"""The exported model the Trainer writes: the SavedModel with the Transform graph and
its three signatures, the image-header check inside it, and TF Serving's warmup file."""
