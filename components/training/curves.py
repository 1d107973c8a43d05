"""The training curves as a PNG beside the Trainer's logs."""

from __future__ import annotations

import io


def plot_curves(history: dict) -> bytes:
    """Loss and accuracy per epoch, train and (when evaluated every epoch) eval, as a
    PNG (the caller writes it wherever the model_run artifact lives)."""
    import matplotlib
    matplotlib.use("Agg")  # no display: render to a file only
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (("loss", loss_axis), ("accuracy", accuracy_axis)):
        for prefix, label in (("", "train"), ("val_", "eval")):
            values = history.get(prefix + key)
            if values:
                axis.plot(range(1, len(values) + 1), values, marker="o", label=label)
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.legend()
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    return png.getvalue()
