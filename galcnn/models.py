"""Networks: a compact CNN in the spirit of the classic galaxy classifiers, a small ResNet, and
pooling over a symmetry group so that a prediction does not depend on the cutout's orientation.

Every network is built from a plain dict (:func:`build_model`), which the checkpoint stores,
so a model is rebuilt without executing pickled code. Networks return logits; softmax (with the
calibrated temperature) is applied by whoever turns them into beliefs.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from galcnn.symmetry import apply_element, pool_elements

ARCHITECTURES = ("cnn", "resnet")
SEGMENTATION_ARCHITECTURES = ("unet",)


def _stem_stride(size: Sequence[int]) -> int:
    """Large inputs (e.g. 150 px radio cutouts) are reduced early so compute stays small."""
    smallest = min(size)
    stride = 1
    while smallest / stride > 40:
        stride *= 2
    return stride


def _n_stages(size: Sequence[int], stride: int) -> int:
    """Enough halvings to bring the feature map to about 4-8 pixels, at least 2, at most 5."""
    side = min(size) / stride
    return int(min(5, max(2, math.floor(math.log2(max(side, 4) / 4)))))


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def _stem(n_bands: int, width: int, size: Sequence[int]) -> nn.Sequential:
    """A thin convolution at full resolution, then strided ones down to about 40 px.

    The full-resolution layer sees every pixel (thin spiral arms, compact radio cores) before
    the map is reduced; keeping it thin keeps it cheap.
    """
    stride = _stem_stride(size)
    if stride == 1:
        return _conv_bn_relu(n_bands, width)
    layers, channels = [_conv_bn_relu(n_bands, max(8, width // 2))], max(8, width // 2)
    while stride > 1:
        layers.append(_conv_bn_relu(channels, width, 2))
        channels, stride = width, stride // 2
    return nn.Sequential(*layers)


def _features(n_bands: int, width: int, size: Sequence[int], stage) -> tuple[nn.Sequential, int]:
    """The stem, then stages that halve the map with widths doubling up to 8x ``width``;
    ``stage(c_in, c_out)`` returns one stage's modules. Returns the stack and its channels."""
    layers: list[nn.Module] = [_stem(n_bands, width, size)]
    channels = width
    for index in range(_n_stages(size, _stem_stride(size))):
        out = width * 2 ** min(index, 3)
        layers += stage(channels, out)
        channels = out
    return nn.Sequential(*layers), channels


class CompactCNN(nn.Module):
    """Convolution, ReLU and max-pooling stages, then dropout and dense layers.

    The classic recipe of the galaxy-morphology CNNs (Dieleman et al. 2015 and successors),
    with batch normalisation and a global average pool so any input size works; one
    convolution per stage keeps it cheap enough for a laptop CPU.
    """

    def __init__(self, n_bands: int, n_classes: int, size: Sequence[int], width: int = 32,
                 dropout: float = 0.3):
        super().__init__()
        self.features, channels = _features(
            n_bands, width, size, lambda c_in, c_out: [_conv_bn_relu(c_in, c_out),
                                                       nn.MaxPool2d(2)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, 128),
                                  nn.ReLU(inplace=True), nn.Dropout(dropout),
                                  nn.Linear(128, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.skip(x))


class ResNet(nn.Module):
    """A small residual network: one block per stage, widths doubling as the map halves."""

    def __init__(self, n_bands: int, n_classes: int, size: Sequence[int], width: int = 32,
                 dropout: float = 0.3):
        super().__init__()
        self.features, channels = _features(
            n_bands, width, size, lambda c_in, c_out: [BasicBlock(c_in, c_out, 2),
                                                       BasicBlock(c_out, c_out, 1)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class _GroupPooled(nn.Module):
    """A network with the group elements it pools over and the class swap of reflections."""

    def __init__(self, net: nn.Module, elements: list[tuple[int, bool]],
                 mirror_swap: list[int] | None = None):
        super().__init__()
        self.net = net
        self.elements = [(int(k), bool(f)) for k, f in elements]
        self.register_buffer("mirror_swap", torch.tensor(mirror_swap or [], dtype=torch.long),
                             persistent=False)


class SymmetryPooled(_GroupPooled):
    """Average a network's logits over the transformed copies of its input (Dieleman et al.
    2015), so the prediction is invariant to the group.

    ``mirror_swap`` is a permutation of the classes that a reflection exchanges (``spiral_cw``
    and ``spiral_acw``): the logits of a reflected copy are permuted back before averaging, which
    makes the model *equivariant* in the right way instead of blind to winding sense.
    """

    def forward(self, x: torch.Tensor, pooled: bool = True) -> torch.Tensor:
        if not pooled or len(self.elements) == 1:
            return self.net(x)
        return pool_elements(self.net, x, self.elements, self.mirror_swap)

    def per_element(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every group element, ``(elements, batch, classes)``, for TTA spreads."""
        outputs = []
        for k, flip in self.elements:
            logits = self.net(apply_element(x, k, flip))
            if flip and self.mirror_swap.numel():
                logits = logits[:, self.mirror_swap]
            outputs.append(logits)
        return torch.stack(outputs)


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(_conv_bn_relu(c_in, c_out), _conv_bn_relu(c_out, c_out))


class UNet(nn.Module):
    """Encoder of convolution + max-pool blocks, decoder of bilinear up-sampling + convolution
    with skip connections (Ronneberger et al. 2015); logits per pixel and class.

    Any input size: the input is padded (reflected) up to a multiple of ``2**depth`` and the
    output cropped back. The network is translation-equivariant for shifts that are multiples
    of ``2**depth``, which is what lets ``segment`` tile images without changing the result.
    """

    def __init__(self, n_bands: int, n_classes: int, depth: int = 3, width: int = 16,
                 dropout: float = 0.0):
        super().__init__()
        self.depth = depth
        widths = [width * 2 ** level for level in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(n_bands, widths[0])] + [
            _double_conv(widths[i - 1], widths[i]) for i in range(1, depth + 1)])
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.up = nn.ModuleList([_double_conv(widths[i + 1] + widths[i], widths[i])
                                 for i in reversed(range(depth))])
        self.head = nn.Conv2d(widths[0], n_classes, 1)

    @property
    def multiple(self) -> int:
        return 2 ** self.depth

    def receptive_radius(self) -> int:
        """Pixels on each side that can influence an output pixel (an upper bound)."""
        radius = 0.0
        for level in range(self.depth):
            scale = 2 ** level
            radius += 2 * scale + scale / 2 + 2 * scale + scale  # convs, pool, decoder, upsample
        return int(math.ceil(radius + 2 * 2 ** self.depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
        return self.head(x)[..., :height, :width]


class DensePooled(_GroupPooled):
    """Average per-pixel logits over the transformed copies of the input, each mapped back to
    the input's orientation (and mirror-image classes swapped for reflected copies)."""

    def forward(self, x: torch.Tensor, pooled: bool = True) -> torch.Tensor:
        if not pooled or len(self.elements) == 1:
            return self.net(x)
        total = None
        for k, flip in self.elements:
            logits = self.net(apply_element(x, k, flip))
            logits = torch.rot90(logits, -k, dims=(-2, -1)) if k % 4 else logits
            if flip:
                logits = torch.flip(logits, dims=(-1,))
                if self.mirror_swap.numel():
                    logits = logits[:, self.mirror_swap]
            total = logits if total is None else total + logits
        return total / len(self.elements)


def build_model(spec: dict) -> SymmetryPooled | DensePooled:
    """Rebuild a model from the plain dict a checkpoint stores (``arch``, ``n_bands``, ...)."""
    arch = spec["arch"]
    if arch == "unet":
        unet = UNet(spec["n_bands"], spec["n_classes"], depth=spec.get("depth", 3),
                    width=spec.get("width", 16), dropout=spec.get("dropout", 0.0))
        return DensePooled(unet, spec.get("pool_elements", [[0, False]]), spec.get("mirror_swap"))
    kwargs = dict(n_bands=spec["n_bands"], n_classes=spec["n_classes"], size=spec["size"],
                  width=spec.get("width", 32), dropout=spec.get("dropout", 0.3))
    if arch == "cnn":
        net: nn.Module = CompactCNN(**kwargs)
    elif arch == "resnet":
        net = ResNet(**kwargs)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return SymmetryPooled(net, spec.get("pool_elements", [[0, False]]), spec.get("mirror_swap"))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
