"""The report pages' pictures as PNG files: class balance per split, the confusion matrix,
and the monitor's served-beside-reference bars and channel statistics."""

from __future__ import annotations

from typing import Dict, List, Optional

from components.contract import CLASS_NAMES


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # no display: render to files only
    import matplotlib.pyplot as plt
    return plt


def class_balance(class_counts: Dict[str, List[int]], path: str) -> None:
    """Share of each class in each split, the splits side by side (train first), with
    the share of a balanced split marked."""
    grouped_bars(class_counts, list(CLASS_NAMES), "% of the split", path,
                 even_share=1 / len(CLASS_NAMES))


def confusion_matrix(matrix: List[List[int]], path: str) -> None:
    """Counts with true classes as rows, predicted as columns; the colour is the share
    of the row, so a rare class's mistakes show as clearly as a common one's."""
    import numpy as np

    plt = _pyplot()
    counts = np.asarray(matrix, dtype=float)
    row_share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(7, 6.2))
    image = axis.imshow(row_share, cmap="Blues", vmin=0, vmax=1)
    for true in range(counts.shape[0]):
        for predicted in range(counts.shape[1]):
            axis.text(predicted, true, f"{int(counts[true, predicted])}", ha="center",
                      va="center", fontsize=8,
                      color="white" if row_share[true, predicted] > 0.5 else "black")
    axis.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=45, ha="right")
    axis.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of the true class")
    figure.tight_layout()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def grouped_bars(series: Dict[str, List[float]], categories: List[str], ylabel: str,
                 path: str, even_share: Optional[float] = None) -> None:
    """Bars of several series side by side per category (served beside the reference,
    test beside train), each as a share of its own total, not counts, so that samples
    of different sizes compare (the legend gives each one's size); `even_share` marks
    the share every category would have if they were even."""
    import numpy as np

    plt = _pyplot()
    positions = np.arange(len(categories))
    width = 0.8 / max(len(series), 1)
    figure, axis = plt.subplots(figsize=(9, 3.2))
    for index, (name, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        shares = 100 * values / max(values.sum(), 1)
        axis.bar(positions + (index - (len(series) - 1) / 2) * width, shares, width,
                 label=f"{name} ({int(values.sum()):,} images)")
    if even_share is not None:
        axis.axhline(100 * even_share, color="grey", linewidth=0.8, linestyle="--")
    axis.set_xticks(positions, categories, rotation=30, ha="right")
    axis.set_ylabel(ylabel)
    # Above the axes: inside, it would hide the bars.
    axis.legend(frameon=False, fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                ncol=len(series))
    axis.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)


def channel_statistics_chart(channels: Dict[str, list], path: str) -> None:
    """Each colour channel's pixel mean and standard deviation, training beside served."""
    import numpy as np

    plt = _pyplot()
    names = channels["names"]
    positions = np.arange(len(names))
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.0))
    for axis, statistic in zip(axes, ("mean", "std")):
        for index, source in enumerate(("training", "served")):
            axis.bar(positions + (index - 0.5) * 0.38, channels[f"{source} {statistic}"],
                     0.38, label=source, color=("#8c959f", "#0969da")[index])
        axis.set_xticks(positions, names)
        axis.set_title(f"pixel {statistic} (0..255)", fontsize=10)
        axis.spines[["top", "right"]].set_visible(False)
    axes[0].legend(frameon=False, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(figure)
