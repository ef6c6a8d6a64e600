"""Attribution maps: which pixels a classifier's belief in one class rests on.

Both methods run through the pooled model that every command runs, so a map explains the
prediction a table shows:

- Grad-CAM (Selvaraju et al. 2017): a feature block's maps weighted by the mean gradient of
  the class logit, positive part, upsampled to the input. The block is the deepest whose
  maps are at least ``MIN_CAM_SIDE`` (8) pixels on a side: the last block of a network for
  64 px cutouts is 4 x 4, too coarse to tell a galaxy from its surroundings (on simulated
  galaxies its maps put 0.35 of their weight inside the galaxy's mask against 0.44 for the
  same network with random weights; the deepest 8 x 8 block 0.52 against 0.46; validation
  simulations, bench/RESULTS.md). For a model pooled over a symmetry group each copy's map is
  turned back to the input's orientation before the copies are averaged, so the map turns
  with the cutout.
- Integrated gradients (Sundararajan et al. 2017): the gradient of the class logit averaged
  along the straight path from a baseline (an empty image: 0, the background of the peak
  stretch) to the input, times the input minus the baseline. Per pixel and band; the sum
  over pixels is the logit's change from the baseline (completeness), which tests check.

No weight changes and no gradient is left on the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from galcnn.models import GroupPooled
from galcnn.models.symmetry import invert_element

__all__ = ["grad_cam", "integrated_gradients", "MIN_CAM_SIDE"]

MIN_CAM_SIDE = 8
"""Grad-CAM reads the deepest feature block whose maps have at least this many pixels."""


def _class_logits(model: GroupPooled, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return model(x).float().gather(1, target.view(-1, 1)).sum()


def grad_cam(model: GroupPooled, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM maps ``(n, y, x)`` of class ``target[i]`` for each input ``x[i]``; an
    ensemble's is the mean of its members' maps, each from its own features."""
    if model.dense:
        raise ValueError("attribution maps are for classifiers")
    members = model.members
    return sum(_member_cam(member, x, target) for member in members) / len(members)


def _member_cam(model: GroupPooled, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    captured: list[torch.Tensor] = []

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured.append(output)

    hooks = [block.register_forward_hook(keep) for block in model.net.feature_blocks()]
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # so the activations carry gradients
            _class_logits(model, x, target).backward()
    finally:
        for hook in hooks:
            hook.remove()
        model.zero_grad(set_to_none=True)
    resolved = [f for f in captured if min(f.shape[-2:]) >= MIN_CAM_SIDE]
    features = resolved[-1] if resolved else captured[0]
    weights = features.grad.float().mean((2, 3), keepdim=True)
    cams = F.relu((weights * features.detach().float()).sum(1, keepdim=True))
    cams = F.interpolate(cams, size=x.shape[-2:], mode="bilinear", align_corners=False)
    cams = cams.view(len(model.elements), x.shape[0], *x.shape[-2:])
    return torch.stack([invert_element(cam, *element)
                        for cam, element in zip(cams, model.elements)]).mean(0)


def integrated_gradients(model: GroupPooled, x: torch.Tensor, target: torch.Tensor, *,
                         steps: int = 32, baseline: torch.Tensor | None = None
                         ) -> torch.Tensor:
    """Integrated gradients ``(n, bands, y, x)`` of class ``target[i]``, from ``baseline``
    (zeros) to ``x`` in ``steps`` midpoint steps."""
    if model.dense:
        raise ValueError("attribution maps are for classifiers")
    x = x.detach().float()
    baseline = torch.zeros_like(x) if baseline is None else baseline.to(x)
    total = torch.zeros_like(x)
    try:
        with torch.enable_grad():
            for step in range(steps):
                point = (baseline + (step + 0.5) / steps * (x - baseline)).requires_grad_(True)
                total += torch.autograd.grad(_class_logits(model, point, target), point)[0]
    finally:
        model.zero_grad(set_to_none=True)
    return (x - baseline) * total / steps
