"""Losses for per-pixel classification, where the foreground is a thin minority of pixels."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["segmentation_loss"]


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor,
                      weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                      dice_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy plus soft Dice (Milletari et al. 2016) over the foreground classes.

    Cross-entropy alone is dominated by the many background pixels and under-segments faint
    outskirts; the Dice term scores each class by overlap, whatever its pixel count. Classes
    absent from both the batch's targets and predictions do not count.
    """
    ce = F.cross_entropy(logits, target, weight=weight, label_smoothing=label_smoothing)
    if dice_weight == 0:
        return ce
    probs = logits.softmax(1)
    one_hot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    total = probs.sum(dims) + one_hot.sum(dims)
    dice = (2 * intersection + 1.0) / (total + 1.0)
    present = (one_hot.sum(dims)[1:] > 0).to(dice.dtype)
    count = present.sum()  # a mean over the present classes, selected without reading them
    dice_loss = torch.where(count > 0, 1.0 - (dice[1:] * present).sum() / count.clamp(min=1),
                            0.0)
    return ce + dice_weight * dice_loss
