"""The segmentation loss: cross-entropy plus soft Dice over foreground classes."""

import torch
from torch.nn import functional as F

from galcnn.losses import segmentation_loss


def test_dice_adds_to_cross_entropy_and_vanishes_when_perfect():
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2:4, 2:4] = 1
    logits = torch.randn(1, 2, 8, 8)
    ce = F.cross_entropy(logits, target)
    assert torch.isclose(segmentation_loss(logits, target, dice_weight=0.0), ce)
    assert segmentation_loss(logits, target) > ce
    perfect = F.one_hot(target, 2).permute(0, 3, 1, 2).float() * 50
    assert segmentation_loss(perfect, target) < 1e-3


def test_classes_absent_from_the_batch_do_not_count():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    logits = torch.zeros(1, 3, 4, 4)
    logits[:, 0] = 20  # all background, predicted background
    assert segmentation_loss(logits, target) < 1e-6
