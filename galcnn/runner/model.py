"""A checkpoint opened once for a command: the model it holds, where and how it runs.

Every command that runs a model starts the same way: choose the device, read the checkpoint
(once: its checksum comes from the same bytes), refuse a model of the other task in one line,
build the model pooled over its symmetry group (or bare, ``pooled=False``), put it on the
device in its precision. :class:`LoadedModel` is the result; its ``predictor`` computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from galcnn.card import ModelCard
from galcnn.checkpoint import CheckpointError, model_of, read_checkpoint, resolve_checkpoint
from galcnn.errors import GalcnnError
from galcnn.inference import Predictor
from galcnn.models import Ensemble, GroupPooled
from galcnn.runtime import precision_of, select_device

__all__ = ["LoadedModel", "open_model", "NEEDS", "RunError"]


class RunError(GalcnnError):
    """A model cannot be run over the inputs into the output (a bad model, options, inputs
    or output); one line. The streaming stages' own error (``PredictError``)."""

#: What a command needs, said when a checkpoint of the other task is given.
NEEDS = {"classify": "a classifier",
         "segment": "a U-Net (galcnn train --task segment)"}


@dataclass
class LoadedModel:
    """A model ready to run, with what its outputs must say about it."""

    path: str
    """The checkpoint file (a run directory resolved to its best.pt)."""
    checksum: str
    """SHA-256 of the checkpoint file, hex."""
    predictor: Predictor
    extras: dict = field(default_factory=dict)
    """Entries of the checkpoint besides the card and the weights (``anomaly_reference``)."""

    @property
    def card(self) -> ModelCard:
        return self.predictor.card

    @property
    def model(self) -> GroupPooled:
        return self.predictor.model

    @property
    def device(self) -> torch.device:
        return self.predictor.device

    @property
    def dtype(self) -> torch.dtype | None:
        return self.predictor.dtype

    @property
    def precision(self) -> str:
        return precision_of(self.device, self.dtype)


def open_model(path: str, task: str, command: str, *, device: str = "auto", amp: bool = True,
               pooled: bool = True, mc_dropout: int = 0,
               error: type[GalcnnError] = RunError) -> LoadedModel:
    """The checkpoint or run directory ``path`` opened for ``command``, which needs a model
    of ``task``; every refusal is one line, as ``error``."""
    try:
        torch_device = select_device(device)
        state, checksum = read_checkpoint(path)
        card = state["card"]
        if card.task != task:
            raise error(f"{path}: a {card.task} model; {command} needs {NEEDS[task]}")
        model = model_of(state, path)
    except (CheckpointError, ValueError) as exc:
        if isinstance(exc, error):
            raise
        raise error(str(exc)) from None
    if not pooled:
        bare = [GroupPooled(member.net) for member in model.members]
        model = bare[0] if len(bare) == 1 else Ensemble(bare)
        model.card = card
    extras = {k: v for k, v in state.items() if k not in ("card", "model", "members", "format",
                                                         "format_version")}
    predictor = Predictor(model, torch_device, amp=amp, mc_dropout=mc_dropout)
    return LoadedModel(resolve_checkpoint(path), checksum, predictor, extras)
