"""The group-convolution classifier: exact symmetry under the eight right-angle elements."""

from __future__ import annotations

import itertools

import pytest
import torch

from galcnn.models import create_model, model_is_invariant
from galcnn.models.equivariant import D4_ELEMENTS, INVERSE, PRODUCT, group_permutation
from galcnn.models.symmetry import apply_element

SWAP = [0, 2, 1]  # classes a, b, c: b and c are mirror images


def _net(size, mirror_swap=None):
    torch.manual_seed(0)
    return create_model("gcnn", n_bands=2, n_classes=3, size=size, width=8,
                        mirror_swap=mirror_swap).eval()


def test_the_multiplication_table_is_the_group_of_apply_element():
    x = torch.randn(5, 5)
    for a, b in itertools.product(range(8), repeat=2):
        composed = apply_element(apply_element(x, *D4_ELEMENTS[b]), *D4_ELEMENTS[a])
        assert torch.equal(composed, apply_element(x, *D4_ELEMENTS[PRODUCT[a][b]]))
    assert all(PRODUCT[a][INVERSE[a]] == 0 for a in range(8))
    assert sorted(group_permutation(5)) == list(range(8))


@pytest.mark.parametrize("size", [(20, 20), (45, 45)])  # even; odd with a pooled stem
def test_features_move_and_permute_with_the_input_and_logits_do_not_change(size):
    net = _net(size)
    x = torch.randn(2, 2, *size)
    with torch.no_grad():
        features, logits = net.forward_features(x), net(x)
        n, c, h, w = features.shape
        for index, element in enumerate(D4_ELEMENTS):
            moved = apply_element(x, *element)
            expected = features.view(n, c // 8, 8, h, w)[:, :, group_permutation(index)]
            expected = apply_element(expected.reshape(n, c, h, w), *element)
            torch.testing.assert_close(net.forward_features(moved), expected, rtol=1e-4,
                                       atol=1e-4)
            torch.testing.assert_close(net(moved), logits, rtol=1e-4, atol=1e-5)
            embedded = net.forward_head(net.forward_features(moved), pre_logits=True)
            torch.testing.assert_close(embedded, net.forward_head(features, pre_logits=True),
                                       rtol=1e-4, atol=1e-5)


def test_a_reflection_swaps_mirror_pair_classes_and_a_rotation_does_not():
    net = _net((24, 24), mirror_swap=SWAP)
    x = torch.randn(3, 2, 24, 24)
    with torch.no_grad():
        logits = net(x)
        torch.testing.assert_close(net(apply_element(x, 1, False)), logits,
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(net(apply_element(x, 3, True)), logits[:, SWAP],
                                   rtol=1e-4, atol=1e-5)
        assert not torch.allclose(logits[:, 1], logits[:, 2])  # it tells the pair apart


def test_it_is_registered_as_invariant_and_trains_in_channels_last():
    assert model_is_invariant("gcnn") and not model_is_invariant("resnet")
    net = _net((16, 16)).train().to(memory_format=torch.channels_last)
    x = torch.randn(4, 2, 16, 16).contiguous(memory_format=torch.channels_last)
    net(x).logsumexp(1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
