"""Classifiers adapt to any band count and input size."""

from __future__ import annotations

import pytest
import torch

from galcnn.models import count_parameters, create_model, list_models


@pytest.mark.parametrize("name", list_models("classify"))
@pytest.mark.parametrize("size", [(32, 32), (64, 48), (150, 150), (20, 20)])
def test_any_size_and_band_count(name, size):
    net = create_model(name, n_bands=3, n_classes=4, size=size, width=8)
    logits = net(torch.randn(2, 3, *size))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
    assert count_parameters(net) > 1000


def test_large_inputs_are_reduced_early():
    """A 150 px radio cutout goes through a strided stem: a handful of stages, not seven."""
    small = create_model("resnet", n_bands=1, n_classes=2, size=(32, 32), width=8)
    large = create_model("resnet", n_bands=1, n_classes=2, size=(150, 150), width=8)
    assert len(large.feature_blocks()) <= len(small.feature_blocks()) + 2
