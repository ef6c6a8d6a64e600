"""Tables that more than one command prints; class names and titles are printed as text
(no markup, control characters escaped), whatever a label table named them."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from galcnn.cli.main import printable


def _text(value: str) -> Text:
    return Text(printable(str(value)))

__all__ = ["class_metrics_table", "pixel_metrics_table", "confusion_table"]


def class_metrics_table(metrics: dict, title: str) -> Table:
    """Per-class precision, recall, F1 and support."""
    table = Table(title=_text(title))
    for column in ("class", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, values in metrics["per_class"].items():
        table.add_row(_text(name), f"{values['precision']:.3f}", f"{values['recall']:.3f}",
                      f"{values['f1']:.3f}", str(values["support"]))
    return table


def pixel_metrics_table(metrics: dict, title: str) -> Table:
    """Per-class IoU, recall and pixel count of a U-Net."""
    table = Table(title=_text(title))
    for column in ("class", "IoU", "recall", "pixels"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, values in metrics["per_class"].items():
        table.add_row(_text(name), f"{values['iou']:.3f}", f"{values['recall']:.3f}",
                      str(values["support"]))
    return table


def confusion_table(metrics: dict, title: str) -> Table:
    """Counts of true (rows) against predicted (columns) classes."""
    classes = list(metrics["per_class"])
    table = Table(title=_text(title))
    table.add_column("true \\ predicted")
    for name in classes:
        table.add_column(_text(name), justify="right")
    for name, row in zip(classes, metrics["confusion_matrix"]):
        table.add_row(_text(name), *(str(v) for v in row))
    return table
