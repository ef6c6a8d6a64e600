"""The U-Net: any input size, and a receptive radius that bounds every pixel's context."""

from __future__ import annotations

import torch

from galcnn.models import create_model


def test_any_size_in_and_out():
    net = create_model("unet", n_bands=2, n_classes=3, depth=2, width=4).eval()
    for shape in ((17, 23), (5, 4), (64, 64)):
        with torch.no_grad():
            assert net(torch.randn(1, 2, *shape)).shape == (1, 3, *shape)
    assert net.multiple == 4 and net.num_classes == 3


def test_unet_receptive_radius_bounds_the_influence():
    net = create_model("unet", n_bands=1, n_classes=2, depth=3, width=4).eval()
    x = torch.randn(1, 1, 192, 192, requires_grad=True)
    net(x)[0, :, 96, 96].sum().backward()
    touched = (x.grad[0, 0].abs() > 0).nonzero()
    reach = int((touched - 96).abs().max())
    assert reach <= net.receptive_radius() and reach > net.receptive_radius() // 2
