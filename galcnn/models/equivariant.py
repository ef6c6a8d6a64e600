"""A classifier equivariant by construction to the dihedral group D4: group convolutions.

Right-angle rotations and reflections of a cutout permute the channels of a group
convolution's output (Cohen & Welling 2016, "p4m"): every filter is applied in its eight
orientations, and a layer's filter for one orientation reads the previous layer's channels in
the matching order. Pooling over the rotations at the end makes the prediction independent of
the cutout's orientation in a single pass, where :class:`galcnn.models.GroupPooled` needs a
pass per orientation, and the filters need not learn each orientation from augmented data:
the group-equivariant CNNs of Scaife & Porter (2021) are the best supervised results on
MiraBest.

A reflection exchanges the two halves of the group (the rotations with and without the
mirror), so the head reads each half alone and, for classes that come in mirror-image pairs
(``spiral_cw``/``spiral_acw``), swaps the pair in the reflected half's logits
(``mirror_swap``): a reflected spiral is then classified as the mirrored class, exactly.
Without pairs the network is invariant to all eight elements.

Channels are stored as ``(batch, channels * 8, y, x)``, the eight orientations of a channel
next to each other, so every layer is an ordinary ``conv2d``. Halving the map keeps the
symmetry exactly (a 2x2 pool on an even side, a 3x3 pool with stride 2 on an odd one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from galcnn.models.layers import stage_count, stem_stride
from galcnn.models.registry import Network, register_model
from galcnn.models.symmetry import Element, apply_element

__all__ = ["GroupCNN", "D4_ELEMENTS", "group_permutation"]

#: The eight elements, index ``4 * flip + k``: the rotations first, then the reflected ones.
D4_ELEMENTS: list[Element] = [(k, flip) for flip in (False, True) for k in range(4)]
ORDER = len(D4_ELEMENTS)


def _multiplication_table() -> tuple[list[list[int]], list[int]]:
    """``product[a][b]``: the element that applies ``b`` and then ``a``; ``inverse[a]``.

    Found by applying the elements to an image with no symmetry, so the table follows
    :func:`apply_element`'s convention by construction."""
    probe = torch.arange(9.0).view(3, 3)
    images = [apply_element(probe, *element) for element in D4_ELEMENTS]

    def index_of(image: torch.Tensor) -> int:
        return next(i for i, known in enumerate(images) if torch.equal(known, image))

    product = [[index_of(apply_element(images[b], *D4_ELEMENTS[a])) for b in range(ORDER)]
               for a in range(ORDER)]
    inverse = [product[a].index(0) for a in range(ORDER)]
    return product, inverse


PRODUCT, INVERSE = _multiplication_table()


def group_permutation(element: int) -> list[int]:
    """Where the group channels come from when the input is transformed by ``element``:
    channel ``h`` of the transformed input's features is channel ``element^-1 h`` of the
    original's (then moved in space by ``element``)."""
    return [PRODUCT[INVERSE[element]][h] for h in range(ORDER)]


class GroupConv(nn.Module):
    """A convolution whose output has ``ORDER`` orientations per channel.

    ``lifting``: the input is an image (plain channels); otherwise it is a group feature map
    with ``ORDER`` orientations per channel."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, lifting: bool = False):
        super().__init__()
        self.lifting, self.padding = lifting, kernel // 2
        # (out, in x orientations, y, x): a 4-d weight, so channels-last memory applies
        shape = (c_out, c_in * (1 if lifting else ORDER), kernel, kernel)
        self.weight = nn.Parameter(torch.randn(shape) * math.sqrt(2.0 / math.prod(shape[1:])))
        if not lifting:
            rows = [[PRODUCT[INVERSE[h]][g] for g in range(ORDER)] for h in range(ORDER)]
            self.register_buffer("rows", torch.tensor(rows), persistent=False)

    def full_weight(self) -> torch.Tensor:
        """The ordinary convolution weight: the filter in every orientation ``h``, reading
        the input's orientations in the order ``h^-1 g``."""
        w = self.weight
        c_out, c_in, kernel = w.shape[0], w.shape[1], w.shape[2:]
        if self.lifting:
            out = torch.stack([apply_element(w, *e) for e in D4_ELEMENTS], dim=1)
            return out.reshape(c_out * ORDER, c_in, *kernel)
        w = w.reshape(c_out, c_in // ORDER, ORDER, *kernel)
        out = torch.stack([apply_element(w[:, :, self.rows[h]], *D4_ELEMENTS[h])
                           for h in range(ORDER)], dim=1)
        return out.reshape(c_out * ORDER, c_in, *kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.full_weight().to(x.dtype), padding=self.padding)


class GroupBatchNorm(nn.BatchNorm3d):
    """Batch normalisation with one mean and scale per channel, shared by its orientations
    (separate ones would break the symmetry)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return super().forward(x.reshape(n, c // ORDER, ORDER, h, w)).reshape(n, c, h, w)


def _group_conv_bn(c_in: int, c_out: int, kernel: int = 3, lifting: bool = False
                   ) -> list[nn.Module]:
    return [GroupConv(c_in, c_out, kernel, lifting), GroupBatchNorm(c_out)]


class GroupBlock(nn.Module):
    """Two group convolutions with a skip connection (a residual block of group channels)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(*_group_conv_bn(c_in, c_out), nn.ReLU(inplace=True),
                                  *_group_conv_bn(c_out, c_out))
        self.skip = (nn.Identity() if c_in == c_out
                     else nn.Sequential(*_group_conv_bn(c_in, c_out, kernel=1)))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.skip(x))


def _halving(side: Sequence[int]) -> tuple[nn.MaxPool2d, list[int]]:
    """A max pool that halves each side and keeps the symmetry, and the sides it gives."""
    odd = [s % 2 for s in side]
    pool = nn.MaxPool2d(tuple(2 + o for o in odd), 2, tuple(odd))
    return pool, [(s + 1) // 2 if o else s // 2 for s, o in zip(side, odd)]


class GroupCNN(Network):
    """A lifting convolution at full resolution, residual stages of group convolutions that
    halve the map (the layout of :class:`galcnn.models.classifiers.ResNet`), a spatial mean,
    the mean over the rotations in each half of the group, and a dense head."""

    channels_last_weights = False  # the convolution weights are built in every pass

    def __init__(self, n_bands: int, n_classes: int, size: Sequence[int], width: int = 32,
                 dropout: float = 0.3, mirror_swap: Sequence[int] | None = None):
        super().__init__()
        channels = max(2, round(width / 4))  # 8 orientations: ~2x the width's channels
        side = list(size)
        stem: list[nn.Module] = [*_group_conv_bn(n_bands, channels, lifting=True),
                                 nn.ReLU(inplace=True)]
        for _ in range(int(math.log2(stem_stride(size)))):
            pool, side = _halving(side)
            stem.append(pool)
        blocks: list[nn.Module] = [nn.Sequential(*stem)]
        previous = channels
        for index in range(stage_count(size, stem_stride(size))):
            out = channels * 2 ** min(index, 3)
            pool, side = _halving(side)
            blocks.append(nn.Sequential(GroupBlock(previous, out), pool))
            previous = out
        self.features = nn.Sequential(*blocks)
        swap = list(mirror_swap) if mirror_swap else list(range(n_classes))
        self.register_buffer("mirror_swap", torch.tensor(swap, dtype=torch.long),
                             persistent=False)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(previous, n_classes))

    @property
    def num_classes(self) -> int:
        return self.head[-1].out_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def _halves(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The features averaged over space and over the rotations without, and with, the
        mirror: a reflection of the input exchanges the two."""
        pooled = features.float().mean((2, 3)).view(features.shape[0], -1, 2, ORDER // 2)
        return pooled[:, :, 0].mean(-1), pooled[:, :, 1].mean(-1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        plain, mirrored = self._halves(features)
        if pre_logits:  # invariant to all eight elements
            return (plain + mirrored) / 2
        return (self.head(plain) + self.head(mirrored)[:, self.mirror_swap]) / 2

    def feature_blocks(self) -> list[nn.Module]:
        return list(self.features)


@register_model("gcnn", invariant=True)
def group_cnn(n_bands: int, n_classes: int, size: Sequence[int], width: int = 32,
              dropout: float = 0.3, mirror_swap: Sequence[int] | None = None) -> GroupCNN:
    return GroupCNN(n_bands, n_classes, size, width=width, dropout=dropout,
                    mirror_swap=mirror_swap)
