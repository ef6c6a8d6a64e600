"""Building blocks shared by the architectures."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import nn

__all__ = ["conv_bn_relu", "double_conv", "BasicBlock", "StridedPointwise", "feature_stack",
           "stem_stride", "stage_count"]


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(c_in, c_out), conv_bn_relu(c_out, c_out))


class StridedPointwise(nn.Conv2d):
    """A 1x1 convolution with a stride, computed as every ``stride``-th pixel followed by a
    1x1 convolution without one: the same result and the same weights (a checkpoint loads
    either way), but it avoids a torch 2.13 CPU bug: the backward of a strided 1x1
    convolution in channels-last format with fewer than 16 input channels (widths 4, 8, 12)
    corrupts memory and kills the process ("double free or corruption", exit 134/139)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x):
        step = self.stride
        return F.conv2d(x[:, :, ::step[0], ::step[1]], self.weight, self.bias)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            StridedPointwise(c_in, c_out, stride), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.skip(x))


def stem_stride(size: Sequence[int]) -> int:
    """Large inputs (e.g. 150 px radio cutouts) are reduced early so compute stays small."""
    smallest = min(size)
    stride = 1
    while smallest / stride > 40:
        stride *= 2
    return stride


def stage_count(size: Sequence[int], stride: int) -> int:
    """Enough halvings to bring the feature map to about 4-8 pixels, at least 2, at most 5."""
    side = min(size) / stride
    return int(min(5, max(2, math.floor(math.log2(max(side, 4) / 4)))))


def _stem(n_bands: int, width: int, size: Sequence[int]) -> nn.Sequential:
    """A thin convolution at full resolution, then strided ones down to about 40 px.

    The full-resolution layer sees every pixel (thin spiral arms, compact radio cores) before
    the map is reduced; keeping it thin keeps it cheap.
    """
    stride = stem_stride(size)
    if stride == 1:
        return conv_bn_relu(n_bands, width)
    layers, channels = [conv_bn_relu(n_bands, max(8, width // 2))], max(8, width // 2)
    while stride > 1:
        layers.append(conv_bn_relu(channels, width, 2))
        channels, stride = width, stride // 2
    return nn.Sequential(*layers)


def feature_stack(n_bands: int, width: int, size: Sequence[int],
                  stage: Callable[[int, int], list[nn.Module]]) -> tuple[nn.Sequential, int]:
    """The stem, then stages that halve the map with widths doubling up to 8x ``width``;
    ``stage(c_in, c_out)`` returns one stage's modules. Returns the stack and its channels."""
    layers: list[nn.Module] = [_stem(n_bands, width, size)]
    channels = width
    for index in range(stage_count(size, stem_stride(size))):
        out = width * 2 ** min(index, 3)
        layers += stage(channels, out)
        channels = out
    return nn.Sequential(*layers), channels
