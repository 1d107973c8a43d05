"""Transform: the preprocessing_fn (decode, per-channel Z-score from a full Beam pass),
and the statistics read back from a Transform graph."""
