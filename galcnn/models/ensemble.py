"""An ensemble: several trained networks run as one model.

Members are trained apart (other seeds, so other initial weights, sample orders and
augmentations); where their errors are partly independent their average is more accurate and
better calibrated than any one of them (Lakshminarayanan et al. 2017), and how much they
disagree says how far an input is from what they learnt (on MiraBest and GZ1 the gain was
within the noise: bench/RESULTS.md). Members' logits are averaged, as
the copies of a group-pooled model are (:class:`GroupPooled`): the ensemble's logits are the
mean over members and copies alike, and a temperature fitted on the ensemble calibrates
them. :meth:`Ensemble.per_member` gives each member's own logits, for the disagreement.
"""

from __future__ import annotations

import torch
from torch import nn

from galcnn.models.pooled import GroupPooled

__all__ = ["Ensemble"]


class Ensemble(GroupPooled):
    """``members`` (pooled models of one card) averaged. ``net`` is the first member's
    network: the shape of the inputs and outputs, the receptive field, the classes."""

    def __init__(self, members: list[GroupPooled]):
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two members")
        first = members[0]
        super().__init__(first.net, first.elements, first.mirror_swap.tolist() or None)
        self.ensemble = nn.ModuleList(members)

    @property
    def members(self) -> list[GroupPooled]:
        return list(self.ensemble)

    def placed(self, device: torch.device) -> "Ensemble":
        for member in self.ensemble:
            member.placed(device)
        self.to(device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The members' pooled logits averaged (one member at a time: per-pixel outputs of
        all members together are large)."""
        total = None
        for member in self.ensemble:
            logits = member(x)
            total = logits if total is None else total + logits
        return total / len(self.ensemble)

    def per_member(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's pooled logits, ``(members, batch, classes[, y, x])``."""
        return torch.stack([member(x) for member in self.ensemble])

    def per_element(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's every copy, ``(members x elements, batch, ...)``; their mean is
        :meth:`forward` (each member has as many copies)."""
        return torch.cat([member.per_element(x) for member in self.ensemble])

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The members' feature vectors side by side: members learn unrelated features, so
        averaging them would mix unrelated axes; side by side, a squared distance between
        two inputs is the sum of the members' squared distances."""
        return torch.cat([member.embed(x) for member in self.ensemble], dim=1)
