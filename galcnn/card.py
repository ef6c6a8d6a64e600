"""The model card: everything a checkpoint says about its model, typed, written in one place.

A card holds the task and classes, the preprocessing recipe (:class:`Preprocess`), the
architecture by registry name with its arguments, the symmetry group the model is pooled over
(with the mirror-image class pairs a reflection exchanges), the calibration temperature, and
the record of how it was trained. Every command rebuilds the model and its inputs from the
card alone. It is stored as plain values, so a checkpoint loads with
``torch.load(weights_only=True)``; cards of galcnn 0.1 checkpoints are converted on reading.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from galcnn.data.recipe import Preprocess
from galcnn.models.symmetry import mirror_permutation

__all__ = ["ModelCard", "CARD_VERSION"]

CARD_VERSION = 2


@dataclass
class ModelCard:
    """What a trained model is and how its inputs are made."""

    task: str
    """``classify`` (one class per cutout) or ``segment`` (a class per pixel)."""
    classes: list[str]
    """Output classes in logit order (for ``segment``: background, cutout classes, other)."""
    preprocess: Preprocess
    model: str
    """Registry name of the architecture (:func:`galcnn.models.create_model`)."""
    model_args: dict
    """Keyword arguments of ``create_model`` (bands, classes, size, width, ...)."""
    symmetry: str = "none"
    elements: list[tuple[int, bool]] = field(default_factory=lambda: [(0, False)])
    """Group elements ``(k, flip)`` the model is pooled over."""
    mirror_pairs: list[tuple[str, str]] = field(default_factory=list)
    """Class pairs a reflection exchanges (``spiral_cw``/``spiral_acw``)."""
    temperature: float = 1.0
    """Calibration: beliefs are ``softmax(logits / temperature)``."""
    calibration: dict = field(default_factory=dict)
    """Whether the temperature was fitted, on how many samples and errors, and why not."""
    cutout_classes: list[str] = field(default_factory=list)
    """``segment``: the classes of the cutouts the U-Net was trained on."""
    metrics: dict = field(default_factory=dict)
    """Validation metrics of this checkpoint."""
    training: dict = field(default_factory=dict)
    """Training options, epoch, data summary."""
    provenance: dict = field(default_factory=dict)
    """galcnn and torch versions."""
    anomaly: dict = field(default_factory=dict)
    """Anomaly scores (:mod:`galcnn.anomaly`): ``k``, the metric, the size of the reference
    sample of training embeddings kept in the checkpoint and the percentiles of its scores;
    empty when the checkpoint has no reference."""

    def __post_init__(self):
        self.elements = [(int(k), bool(f)) for k, f in self.elements]
        self.mirror_pairs = [(str(a), str(b)) for a, b in self.mirror_pairs]
        if self.task not in ("classify", "segment"):
            raise ValueError(f"unknown task {self.task!r}")
        unknown = [name for pair in self.mirror_pairs for name in pair if name not in self.classes]
        if unknown:
            raise ValueError(f"mirror pair class(es) {', '.join(unknown)} not among the classes")
        if not 0 < self.temperature < float("inf"):
            raise ValueError(f"temperature must be finite and > 0, got {self.temperature}")
        stretch = self.preprocess.stretch.for_task(dense=self.task == "segment")
        self.preprocess = replace(self.preprocess, stretch=stretch)  # what the network sees

    @property
    def mirror_swap(self) -> list[int] | None:
        """Permutation of the output classes under a reflection, or None."""
        if not self.mirror_pairs or not any(flip for _, flip in self.elements):
            return None
        return mirror_permutation(self.classes, self.mirror_pairs)

    def with_updates(self, **changes) -> "ModelCard":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain values for the checkpoint (weights-only loadable)."""
        return {"card_version": CARD_VERSION, "task": self.task, "classes": list(self.classes),
                "cutout_classes": list(self.cutout_classes),
                "preprocess": self.preprocess.to_dict(),
                "model": {"name": self.model, "args": dict(self.model_args)},
                "symmetry": {"group": self.symmetry,
                             "elements": [[k, f] for k, f in self.elements],
                             "mirror_pairs": [list(p) for p in self.mirror_pairs]},
                "temperature": float(self.temperature), "calibration": self.calibration,
                "metrics": self.metrics,
                "training": self.training, "provenance": self.provenance,
                "anomaly": self.anomaly}

    @classmethod
    def from_dict(cls, values: dict) -> "ModelCard":
        """Read a stored card (this version's, or galcnn 0.1's). Raises ValueError/KeyError
        for a card that cannot describe a model."""
        if "card_version" not in values:
            return cls._from_version_1(values)
        if values["card_version"] > CARD_VERSION:
            raise ValueError(f"card version {values['card_version']} is newer than this galcnn "
                             f"reads ({CARD_VERSION}); upgrade galcnn")
        symmetry = values.get("symmetry") or {}
        return cls(task=values["task"], classes=list(values["classes"]),
                   cutout_classes=list(values.get("cutout_classes") or []),
                   preprocess=Preprocess.from_dict(values["preprocess"]),
                   model=values["model"]["name"], model_args=dict(values["model"]["args"]),
                   symmetry=symmetry.get("group", "none"),
                   elements=[tuple(e) for e in symmetry.get("elements") or [(0, False)]],
                   mirror_pairs=[tuple(p) for p in symmetry.get("mirror_pairs") or []],
                   temperature=float(values.get("temperature", 1.0)),
                   calibration=values.get("calibration") or {},
                   metrics=values.get("metrics") or {}, training=values.get("training") or {},
                   provenance=values.get("provenance") or {},
                   anomaly=values.get("anomaly") or {})

    @classmethod
    def _from_version_1(cls, old: dict) -> "ModelCard":
        """galcnn 0.1 cards: stretch and size stored beside a ``prepare`` options dict, and
        the architecture as a ``model`` spec with pooling elements and the class swap."""
        spec = dict(old["model"])
        n_bands = int(old.get("n_bands", spec["n_bands"]))
        bands = old.get("bands") or [str(i) for i in range(n_bands)]
        options = {**(old.get("prepare") or {}), "stretch": old.get("stretch") or
                   (old.get("prepare") or {}).get("stretch") or {}}
        preprocess = Preprocess.from_legacy(options, bands=bands, size=old.get("size"),
                                            band_pattern=old.get("band_pattern"))
        name = spec.pop("arch")
        elements = [tuple(e) for e in spec.pop("pool_elements", None) or [(0, False)]]
        spec.pop("mirror_swap", None)
        return cls(task=old.get("task", "classify"), classes=list(old["classes"]),
                   cutout_classes=list(old.get("cutout_classes") or []), preprocess=preprocess,
                   model=name, model_args=spec, symmetry=old.get("symmetry", "none"),
                   elements=elements,
                   mirror_pairs=[tuple(p) for p in old.get("mirror_pairs") or []],
                   temperature=float(old.get("temperature", 1.0)),
                   metrics=old.get("metrics") or old.get("val_metrics") or {},
                   training={**(old.get("training") or {}), "data": old.get("data") or {},
                             "epoch": old.get("epoch")},
                   provenance={"galcnn_version": old.get("galcnn_version"),
                               "torch_version": old.get("torch_version"),
                               "converted_from_card_version": 1})
