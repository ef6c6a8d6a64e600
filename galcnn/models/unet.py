"""The U-Net of ``segment``: logits per pixel and class, for images of any size."""

from __future__ import annotations

import math

import torch
from torch import nn

from galcnn.models.layers import double_conv
from galcnn.models.registry import Network, register_model

__all__ = ["UNet"]


class UNet(Network):
    """Encoder of convolution + max-pool blocks, decoder of bilinear up-sampling + convolution
    with skip connections (Ronneberger et al. 2015).

    Any input size: the input is padded (reflected) up to a multiple of ``2**depth`` and the
    output cropped back. The network is translation-equivariant for shifts that are multiples
    of ``2**depth``, which is what lets ``segment`` tile images without changing the result.
    """

    def __init__(self, n_bands: int, n_classes: int, depth: int = 3, width: int = 16,
                 dropout: float = 0.0):
        super().__init__()
        self.depth = depth
        widths = [width * 2 ** level for level in range(depth + 1)]
        self.down = nn.ModuleList([double_conv(n_bands, widths[0])] + [
            double_conv(widths[i - 1], widths[i]) for i in range(1, depth + 1)])
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList([double_conv(widths[i + 1] + widths[i], widths[i])
                                 for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    @property
    def num_classes(self) -> int:
        return self.head.out_channels

    @property
    def multiple(self) -> int:
        """Tile corners on multiples of this keep the result independent of the tiling."""
        return 2 ** self.depth

    def receptive_radius(self) -> int:
        """Pixels on each side that can influence an output pixel (an upper bound)."""
        radius = 0.0
        for level in range(self.depth):
            scale = 2 ** level
            radius += 2 * scale + scale / 2 + 2 * scale + scale  # convs, pool, decoder, upsample
        return int(math.ceil(radius + 2 * 2 ** self.depth))

    def feature_blocks(self) -> list[nn.Module]:
        return list(self.down)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder output at full resolution, ``(batch, width, y, x)``."""
        height, width = x.shape[-2:]
        m = self.multiple
        pad_y, pad_x = (-height) % m, (-width) % m
        if pad_y or pad_x:
            mode = "reflect" if min(height, width) > max(pad_y, pad_x) else "replicate"
            x = nn.functional.pad(x, (0, pad_x, 0, pad_y), mode=mode)
        skips = []
        for index, block in enumerate(self.down):
            x = block(x if index == 0 else self.pool(x))
            skips.append(x)
        x = self.dropout(skips.pop())
        for block in self.up:
            skip = skips.pop()
            x = nn.functional.interpolate(x, size=skip.shape[-2:], mode="bilinear",
                                          align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return x[..., :height, :width]

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(features)


@register_model("unet", task="segment")
def unet(n_bands: int, n_classes: int, size=None, depth: int = 3, width: int = 16,
         dropout: float = 0.0) -> UNet:
    """``size`` is accepted and ignored: a U-Net takes any size."""
    return UNet(n_bands, n_classes, depth=depth, width=width, dropout=dropout)
