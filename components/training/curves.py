"""The training curves as a PNG beside the Trainer's logs."""

from __future__ import annotations


def plot_curves(history: dict, path: str) -> None:
    """Loss and accuracy per epoch, train and (when evaluated every epoch) eval."""
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
    figure.savefig(path, dpi=100)
    plt.close(figure)
