"""What `python -m pipeline monitor` counts as drift between served traffic and what
the served version was trained and evaluated on: a typed section of the pipeline
config (`monitoring.*`). Standard library only, so the config loads fast."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class MonitoringConfig:
    # The largest difference of one class's share of the predictions, served traffic
    # against the served model's predictions on the test split (TFDV's L-infinity
    # distance, as the label drift check between spans).
    class_share_threshold: float = 0.1
    # TFDV's Jensen-Shannon divergence between the top-1 confidence histograms, served
    # traffic against the test split (0: the same histogram, 1: no overlap).
    confidence_divergence_threshold: float = 0.1
    # A colour channel's mean over every served pixel, against the training split's
    # (the Transform's statistics, baked into the model): the largest move allowed, in
    # units of the training split's standard deviation of that channel.
    pixel_mean_shift_threshold: float = 0.2
    # A channel's standard deviation over the training split's, outside
    # [1 / ratio, ratio], is drift (washed-out or over-contrasted images).
    pixel_std_ratio_threshold: float = 1.25
    # The largest share of served images in a lossy format (JPEG) or undecodable: the
    # training data is lossless PNG, and JPEG's artefacts are not what the model
    # learned from.
    format_share_threshold: float = 0.5
    # Fewer logged images than this: nothing is judged (too few for the comparisons).
    min_images: int = 100

    def problem(self) -> str:
        """What is wrong with the thresholds, or ""."""
        for name in ("class_share_threshold", "confidence_divergence_threshold",
                     "format_share_threshold"):
            if not 0.0 < getattr(self, name) <= 1.0:
                return f"monitoring.{name}: must be within (0, 1], got {getattr(self, name)}"
        if self.pixel_mean_shift_threshold <= 0.0:
            return (f"monitoring.pixel_mean_shift_threshold: must be > 0, "
                    f"got {self.pixel_mean_shift_threshold}")
        if self.pixel_std_ratio_threshold <= 1.0:
            return (f"monitoring.pixel_std_ratio_threshold: must be > 1, "
                    f"got {self.pixel_std_ratio_threshold}")
        if self.min_images < 1:
            return f"monitoring.min_images: must be >= 1, got {self.min_images}"
        return ""
