"""Group pooling: a network made invariant (or equivariant) to a symmetry group of the image.

The network's logits are averaged over transformed copies of the input (Dieleman et al. 2015).
For a classifier the copies' logits are averaged as they are, so the prediction does not depend
on the cutout's orientation; for a segmentation network each copy's map is first transformed
back to the input's orientation. A reflection turns a clockwise spiral into an anticlockwise
one, so the logits of a reflected copy have the mirror-image classes exchanged
(``mirror_swap``) before averaging: the model then tells the winding sense apart instead of
being blind to it.

The pooled model is the one that training validates and that every command runs by default.
"""

from __future__ import annotations

import torch
from torch import nn

from galcnn.models.registry import Network
from galcnn.models.symmetry import Element, apply_element, invert_element

__all__ = ["GroupPooled"]


class GroupPooled(nn.Module):
    """``net`` averaged over ``elements``; ``card`` is set by :func:`galcnn.load_model`."""

    def __init__(self, net: Network, elements: list[Element] | None = None,
                 mirror_swap: list[int] | None = None):
        super().__init__()
        self.net = net
        self.elements = [(int(k), bool(f)) for k, f in (elements or [(0, False)])]
        self.register_buffer("mirror_swap", torch.tensor(mirror_swap or [], dtype=torch.long),
                             persistent=False)
        self.register_buffer("flipped", torch.tensor([f for _, f in self.elements]),
                             persistent=False)
        """Which copies are reflected: on the model's device, so pooling copies nothing
        from the host (which would wait for the device)."""
        self.card = None

    def placed(self, device: torch.device) -> "GroupPooled":
        """This model on ``device``, weights channels-last where the network wants them."""
        self.to(device)
        return self.to(memory_format=torch.channels_last) if self.net.channels_last_weights \
            else self

    @property
    def members(self) -> list["GroupPooled"]:
        """The trained networks this model averages: itself (an ensemble has several)."""
        return [self]

    def per_member(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's pooled logits, ``(members, batch, ...)``: one member here."""
        return self(x)[None]

    @property
    def dense(self) -> bool:
        """Per-pixel outputs (a segmentation network)."""
        return self.net.task == "segment"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits averaged over the group (the bare network's when the group is trivial)."""
        if len(self.elements) == 1 and self.elements[0] == (0, False):
            return self.net(x)
        if self.dense:  # one copy at a time: per-pixel outputs of all copies are large
            total = None
            for element in self.elements:
                logits = self._back(self.net(apply_element(x, *element)), element)
                total = logits if total is None else total + logits
            return total / len(self.elements)
        return self.per_element(x).mean(0)

    def per_element(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every copy, in the input's orientation and class order:
        ``(elements, batch, classes[, y, x])``. Their mean is :meth:`forward`."""
        if self.dense:
            return torch.stack([self._back(self.net(apply_element(x, *element)), element)
                                for element in self.elements])
        copies = torch.cat([apply_element(x, *element) for element in self.elements])
        logits = self.net(copies).view(len(self.elements), x.shape[0], -1)
        if self.mirror_swap.numel():
            logits = torch.where(self.flipped[:, None, None], logits[:, :, self.mirror_swap],
                                 logits)
        return logits

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The representation the last layer reads (``pre_logits``), averaged over the
        group's copies: a feature vector per input that does not change when the input is
        turned or mirrored within the group, for similarity search and anomaly scores."""
        if self.dense:
            raise ValueError("embeddings are for classifiers")
        copies = torch.cat([apply_element(x, *element) for element in self.elements])
        features = self.net.forward_head(self.net.forward_features(copies), pre_logits=True)
        return features.view(len(self.elements), x.shape[0], -1).mean(0)

    def _back(self, logits: torch.Tensor, element: Element) -> torch.Tensor:
        """One copy's per-pixel logits mapped back to the input's orientation and classes."""
        logits = invert_element(logits, *element)
        if element[1] and self.mirror_swap.numel():
            logits = logits[:, self.mirror_swap]
        return logits
