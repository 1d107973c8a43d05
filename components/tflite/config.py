"""The on-device export's settings (`tflite.*`): which TensorFlow Lite variants every
trained model is converted to, and how much accuracy one may lose and still be pushed.
Standard library only, so the config loads fast."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from components.contract import TFLITE_VARIANTS


@dataclasses.dataclass(frozen=True)
class TFLiteConfig:
    # TensorFlow Lite variants converted from every trained model, checked on the test
    # split and pushed beside a blessed SavedModel: float16 (weights) and int8 (full
    # integer, uint8 input); () converts nothing.
    variants: Tuple[str, ...] = TFLITE_VARIANTS
    # A variant whose test accuracy is below the SavedModel's on the same images by more
    # than this (0.005: half a point) is not pushed. It never blocks the SavedModel.
    max_drop: float = 0.005
    # Train-split images (from the Transform output) int8 calibrates its ranges on.
    representative_images: int = 300

    def problem(self) -> str:
        """What is wrong with the settings, or ""."""
        unknown = [variant for variant in self.variants if variant not in TFLITE_VARIANTS]
        if unknown:
            return (f"tflite.variants: {', '.join(unknown)} unknown (known: "
                    f"{', '.join(TFLITE_VARIANTS)})")
        if not 0.0 <= self.max_drop <= 1.0:
            return f"tflite.max_drop: must be within [0, 1], got {self.max_drop}"
        if self.representative_images < 1:
            return (f"tflite.representative_images: must be >= 1, got "
                    f"{self.representative_images}")
        return ""
