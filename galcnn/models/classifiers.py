"""Classifiers: a compact CNN in the spirit of the classic galaxy classifiers, and a small ResNet.

Both adapt to the band count and the input size: a thin full-resolution convolution, strided
ones down to about 40 px, then stages that halve the map down to about 4 px, a global average
pool and a dense head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from galcnn.models.layers import BasicBlock, conv_bn_relu, feature_stack
from galcnn.models.registry import Network, register_model

__all__ = ["CompactCNN", "ResNet"]


class _Classifier(Network):
    """Feature stack, global average pool, dense head; ``head[-1]`` is the last layer."""

    features: nn.Sequential
    head: nn.Sequential

    @property
    def num_classes(self) -> int:
        return self.head[-1].out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = self.pool(features)
        return self.head[:-1](pooled) if pre_logits else self.head(pooled)

    def feature_blocks(self) -> list[nn.Module]:
        return list(self.features)


class CompactCNN(_Classifier):
    """Convolution, ReLU and max-pooling stages, then dropout and dense layers.

    The classic recipe of the galaxy-morphology CNNs (Dieleman et al. 2015 and successors),
    with batch normalisation and a global average pool so any input size works; one
    convolution per stage keeps it cheap enough for a laptop CPU.
    """

    def __init__(self, n_bands: int, n_classes: int, size: Sequence[int], width: int = 32,
                 dropout: float = 0.3):
        super().__init__()
        self.features, channels = feature_stack(
            n_bands, width, size, lambda c_in, c_out: [conv_bn_relu(c_in, c_out),
                                                       nn.MaxPool2d(2)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, 128),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(128, n_classes))


class ResNet(_Classifier):
    """A small residual network: two blocks per stage, widths doubling as the map halves."""

    def __init__(self, n_bands: int, n_classes: int, size: Sequence[int], width: int = 32,
                 dropout: float = 0.3):
        super().__init__()
        self.features, channels = feature_stack(
            n_bands, width, size, lambda c_in, c_out: [BasicBlock(c_in, c_out, 2),
                                                       BasicBlock(c_out, c_out, 1)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(channels, n_classes))


@register_model("resnet")
def resnet(n_bands: int, n_classes: int, size: Sequence[int], width: int = 32,
           dropout: float = 0.3) -> ResNet:
    return ResNet(n_bands, n_classes, size, width=width, dropout=dropout)


@register_model("cnn")
def compact_cnn(n_bands: int, n_classes: int, size: Sequence[int], width: int = 32,
                dropout: float = 0.3) -> CompactCNN:
    return CompactCNN(n_bands, n_classes, size, width=width, dropout=dropout)
