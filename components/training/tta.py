"""Test-time augmentation: the views of a batch whose logits are averaged, in
`keras.ops` (any backend, inside the exported graph and the TFLite model alike).

- `flip`: the image and its mirror image, half each (cifar10-fast's test).
- `translate` t (airbench94's `infer_mirror_translate`, tta_level 2, with t = 1): half
  for those two; the other half for the image reflect-padded by t and cropped at the
  two diagonal corners (shifted by t down-right and up-left), each with its mirror.
  airbench's weights: 1/4, 1/4, then 1/8 for each of the four shifted views.

Logits are averaged, not probabilities, as both originals do.
"""

from __future__ import annotations

from keras import ops


def _mirrored(weight: float, images, flip: bool) -> list:
    if not flip:
        return [(weight, images)]
    return [(weight / 2, images), (weight / 2, ops.flip(images, axis=2))]


def views(images, flip: bool, translate: int = 0) -> list:
    """[(weight, NHWC images)] whose weights sum to 1."""
    if not translate:
        return _mirrored(1.0, images, flip)
    height, width = images.shape[1], images.shape[2]
    padded = ops.pad(images, [[0, 0], [translate, translate], [translate, translate],
                              [0, 0]], mode="reflect")
    shifted = [padded[:, :height, :width, :],
               padded[:, 2 * translate:2 * translate + height,
                      2 * translate:2 * translate + width, :]]
    return (_mirrored(0.5, images, flip)
            + [view for crop in shifted for view in _mirrored(0.25, crop, flip)])


def averaged_logits(model_logits, images, flip: bool, translate: int = 0):
    """The weighted sum of `model_logits(view)` over the views of `images`."""
    total = None
    for weight, view in views(images, flip, translate):
        logits = weight * model_logits(view)
        total = logits if total is None else total + logits
    return total
