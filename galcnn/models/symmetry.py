"""Symmetry groups on batches of tensors: on-the-fly augmentation and the group elements of pooling.

Elements are ``(k, flip)`` pairs with the meaning of :class:`galcnn.data.augment.D4`: first mirror
left-right, then rotate ``k`` quarter turns. A reflection turns a clockwise spiral into an
anticlockwise one, so reflections either stay out of the group (``rot90``) or come with a
permutation of the classes that swaps mirror-image pairs (``mirror_swap``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from galcnn.data.augment import find_mirror_pairs, group_elements

__all__ = ["Element", "elements_of", "find_mirror_pairs", "mirror_permutation", "apply_element",
           "invert_element", "random_elements", "random_rotations"]

Element = tuple[int, bool]

def elements_of(group: str, size: tuple[int, int] | list[int] | None = None) -> list[Element]:
    """The ``(k, flip)`` elements of a group (``rotate`` pools over its four right angles).

    A quarter turn changes the shape of a non-square image, so for one only the half turns
    (and reflections) are kept.
    """
    elements = [(g.k, g.flip) for g in group_elements(group)]
    if size is not None and size[0] != size[1]:
        elements = [(k, f) for k, f in elements if k % 2 == 0]
    return elements


def mirror_permutation(classes: list[str], pairs: list[tuple[str, str]]) -> list[int]:
    """Index permutation that swaps each pair (identity elsewhere)."""
    index = {c: i for i, c in enumerate(classes)}
    perm = list(range(len(classes)))
    for a, b in pairs:
        perm[index[a]], perm[index[b]] = index[b], index[a]
    return perm


def apply_element(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Apply one group element to the last two axes ``(y, x)`` (same as ``D4(k, flip)``)."""
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k, dims=(-2, -1)) if k % 4 else x


def invert_element(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Undo :func:`apply_element`: rotate back, then mirror back."""
    x = torch.rot90(x, -k, dims=(-2, -1)) if k % 4 else x
    return torch.flip(x, dims=(-1,)) if flip else x


def _on(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small CPU tensor on ``device``, copied without waiting for the device (pinned)."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def random_elements(x: torch.Tensor, labels: torch.Tensor, elements: list[Element],
                    mirror_swap: list[int] | None, generator: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Transform each sample by a random group element; swap labels of reflected samples.

    ``labels`` may be per-sample ``(n,)`` or per-pixel ``(n, y, x)`` maps, which are then
    transformed with their images. The choices are drawn on the CPU (``generator``, so a
    resumed run draws the same) and applied on the device by selection, with no count or
    index read back from it: a training step never waits for the device here."""
    if len(elements) == 1:
        return x, labels
    choice = _on(torch.randint(len(elements), (x.shape[0],), generator=generator), x.device)
    swap = _on(torch.tensor(mirror_swap, dtype=torch.long), labels.device) if mirror_swap \
        else None
    out, new_labels = x, labels
    for index, (k, flip) in enumerate(elements):
        if (k % 4, flip) == (0, False):
            continue  # the identity: already in place
        chosen = choice == index
        out = torch.where(chosen.view(-1, *[1] * (x.ndim - 1)), apply_element(x, k, flip), out)
        per_sample = chosen.view(-1, *[1] * (labels.ndim - 1))
        if labels.ndim == 3:
            new_labels = torch.where(per_sample, apply_element(labels, k, flip), new_labels)
        if flip and swap is not None:
            new_labels = torch.where(per_sample, swap[new_labels], new_labels)
    return out, new_labels


def random_rotations(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rotate each sample by a uniform random angle, zoomed in so no empty corners appear."""
    n = x.shape[0]
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    cos, sin = torch.cos(angle), torch.sin(angle)
    zoom = 1.0 / (cos.abs() + sin.abs())
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * zoom, -sin * zoom
    theta[:, 1, 0], theta[:, 1, 1] = sin * zoom, cos * zoom
    grid = F.affine_grid(_on(theta, x.device).to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
