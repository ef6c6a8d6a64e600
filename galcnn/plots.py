"""PNG plots (matplotlib, Agg): a run directory's learning curves and confusion matrix, an
explained cutout's panel."""

from __future__ import annotations

import numpy as np

from galcnn.data.atomic import atomic_output

__all__ = ["pyplot", "save_figure", "plot_labels", "plot_learning_curves", "plot_confusion",
           "plot_attribution", "plot_mosaic"]


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_labels(names) -> list[str]:
    """Class names as a figure shows them: control characters as ``\\xNN`` escapes, and
    ``$`` escaped (matplotlib would read a pair of them as mathematics)."""
    return ["".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in str(name))
            .replace("$", "\\$") for name in names]


def save_figure(fig, path: str) -> None:
    """Save as PNG (whole or not at all) and close the figure."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    pyplot().close(fig)


def plot_learning_curves(history: list[dict], path: str, *, best_epoch: int | None = None,
                         loss_name: str = "cross-entropy"):
    """Loss and accuracy/macro-F1 (mean IoU for a U-Net) per epoch, the training split beside
    the validation split, the best epoch marked; returns the (closed) figure."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [r["train_loss"] for r in history], marker=".", label="training split")
    left.plot(epochs, [r["val_loss"] for r in history], marker=".", label="validation split")
    left.set(xlabel="epoch", ylabel=f"{loss_name} loss", title="Loss")
    right.plot(epochs, [r["train_accuracy"] for r in history], marker=".",
               label="accuracy, training split")
    right.plot(epochs, [r["val_accuracy"] for r in history], marker=".",
               label="accuracy, validation split")
    key, name = (("val_mean_iou", "mean IoU") if history and "val_mean_iou" in history[0]
                 else ("val_macro_f1", "macro-F1"))
    right.plot(epochs, [r[key] for r in history], marker=".", label=f"{name}, validation split")
    right.set(xlabel="epoch", ylim=(-0.02, 1.04), title=f"Accuracy and {name}")
    for axis in (left, right):
        if best_epoch is not None:
            axis.axvline(best_epoch, color="grey", linestyle="--", linewidth=1,
                         label=f"best epoch ({best_epoch})")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    save_figure(fig, path)
    return fig


def plot_confusion(cm: np.ndarray, classes: list[str], path: str, *,
                   title: str = "Confusion matrix"):
    """Row-normalised confusion matrix (recall on the diagonal) with the counts written in;
    returns the (closed) figure."""
    plt = pyplot()
    totals = cm.sum(1, keepdims=True)
    fraction = np.divide(cm, totals, out=np.zeros(cm.shape), where=totals > 0)
    size = 1.2 + 0.8 * len(classes)
    fig, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(fraction, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(classes)), plot_labels(classes), rotation=45, ha="right")
    axis.set_yticks(range(len(classes)), plot_labels(classes))
    axis.set(xlabel="predicted", ylabel="true", title=f"{title}\n(row fraction, count)")
    for i in range(len(classes)):
        for j in range(len(classes)):
            axis.text(j, i, f"{fraction[i, j]:.2f}\n{cm[i, j]}", ha="center", va="center",
                      fontsize=8, color="white" if fraction[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=axis, fraction=0.046)
    save_figure(fig, path)
    return fig


def _display(image: np.ndarray, clip: bool = True) -> tuple[np.ndarray, str | None]:
    """A network input ``(bands, y, x)`` as something imshow draws: three bands as colour,
    otherwise the first band in grey; scaled to its own 0.5-99.5 percentiles, or (``clip``
    False) to its whole range."""
    shown = np.moveaxis(image[:3], 0, -1) if image.shape[0] == 3 else image[0]
    low, high = np.nanpercentile(shown, [0.5, 99.5] if clip else [0, 100])
    return np.clip((shown - low) / max(high - low, 1e-12), 0, 1), None if shown.ndim == 3 \
        else "gray"


def plot_attribution(image: np.ndarray, cam: np.ndarray, gradients: np.ndarray,
                     beliefs: np.ndarray, classes: list[str], target: int, title: str,
                     path: str):
    """One cutout's explanation: the network's input, the Grad-CAM map over it, the
    integrated gradients (red for, blue against the class), each map with its colour bar,
    and the beliefs, the class the maps are for in orange; returns the (closed) figure.

    The input is shown over its whole range (a network input is already stretched: clipping
    it again flattens a galaxy's core into one level)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.7), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1.2, 1.2, 1.1]})
    shown, cmap = _display(image, clip=False)
    axes[0].imshow(shown, cmap=cmap, origin="lower")
    axes[0].set_title("network input")
    axes[1].imshow(shown, cmap=cmap, origin="lower")
    if np.nanmax(cam) > 0:
        layer = axes[1].imshow(cam / np.nanmax(cam), cmap="inferno", alpha=0.55,
                               origin="lower", vmin=0, vmax=1)
        fig.colorbar(layer, ax=axes[1], fraction=0.046, pad=0.03,
                     label="evidence (of its peak)")
        axes[1].set_title("Grad-CAM")
    else:  # the features only argue against the class: nothing to overlay
        axes[1].set_title("Grad-CAM: no positive evidence", fontsize=9)
    limit = float(np.nanmax(np.abs(gradients))) or 1.0
    layer = axes[2].imshow(gradients, cmap="RdBu_r", vmin=-limit, vmax=limit, origin="lower")
    fig.colorbar(layer, ax=axes[2], fraction=0.046, pad=0.03,
                 label="for (+) / against (-) the class")
    axes[2].set_title("integrated gradients")
    for axis in axes[:3]:
        axis.set_xticks([])
        axis.set_yticks([])
    colours = ["tab:orange" if i == target else "tab:blue" for i in range(len(classes))]
    axes[3].barh(range(len(classes)), beliefs, color=colours)
    axes[3].set_yticks(range(len(classes)), plot_labels(classes))
    axes[3].set_xlim(0, 1)
    axes[3].invert_yaxis()
    axes[3].set_title("beliefs")
    fig.suptitle(plot_labels([f"{title}: maps for {classes[target]} (belief "
                          f"{beliefs[target]:.2f})"])[0])
    save_figure(fig, path)
    return fig


def plot_mosaic(panels: list[list[tuple[str | None, str]]], path: str, *, columns: int = 10):
    """Cutouts read from their FITS files, a block of rows of at most ``columns`` per list of
    ``(file, label)`` (a long list wraps instead of making a strip); a file that is None or
    cannot be read is a grey panel that says so. Returns the (closed) figure."""
    from galcnn.data.fitsio import read_image

    plt = pyplot()
    columns = min(columns, max(len(row) for row in panels))
    lines = [row[start:start + columns] for row in panels
             for start in range(0, len(row), columns)]
    fig, axes = plt.subplots(len(lines), columns, squeeze=False,
                             figsize=(1.9 * columns, 2.1 * len(lines)))
    for axis in axes.flat:
        axis.set_axis_off()
    for r, line in enumerate(lines):
        for c, (file, label) in enumerate(line):
            axis = axes[r, c]
            try:
                image = read_image(file.split(";")).data if file else None
            except (OSError, ValueError):
                image = None
            if image is not None:
                shown, cmap = _display(np.nan_to_num(image))
                axis.imshow(shown, cmap=cmap, origin="lower")
            else:
                axis.set_axis_on()
                axis.set_facecolor("0.85")
                axis.set_xticks([])
                axis.set_yticks([])
                axis.text(0.5, 0.5, "not found", ha="center", va="center", fontsize=8,
                          transform=axis.transAxes)
            axis.set_title(plot_labels([label])[0], fontsize=7)
    save_figure(fig, path)
    return fig
