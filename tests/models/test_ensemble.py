"""Ensembles: members' logits averaged like a group's copies, features side by side."""

from __future__ import annotations

import pytest
import torch

from galcnn.models import Ensemble, GroupPooled, create_model
from galcnn.models.symmetry import elements_of, mirror_permutation

CLASSES = ["edge_on", "elliptical", "spiral_acw", "spiral_cw"]


def _member(seed: int, task: str = "classify") -> GroupPooled:
    torch.manual_seed(seed)
    if task == "segment":
        net = create_model("unet", n_bands=1, n_classes=3, size=(32, 32), width=4, depth=2)
        return GroupPooled(net, elements_of("rot90", (32, 32))).eval()
    net = create_model("resnet", n_bands=2, n_classes=4, size=(32, 32), width=8)
    swap = mirror_permutation(CLASSES, [("spiral_cw", "spiral_acw")])
    return GroupPooled(net, elements_of("dihedral", (32, 32)), swap).eval()


def test_the_ensemble_averages_its_members_logits_and_keeps_each_members():
    members = [_member(0), _member(1), _member(2)]
    ensemble = Ensemble(members).eval()
    x = torch.randn(5, 2, 32, 32)
    with torch.no_grad():
        own = torch.stack([member(x) for member in members])
        torch.testing.assert_close(ensemble(x), own.mean(0))
        torch.testing.assert_close(ensemble.per_member(x), own)
        copies = ensemble.per_element(x)
        assert copies.shape == (3 * 8, 5, 4)
        torch.testing.assert_close(copies.mean(0), ensemble(x), atol=1e-5, rtol=1e-5)
        features = ensemble.embed(x)
        torch.testing.assert_close(features[:, :members[0].embed(x).shape[1]],
                                   members[0].embed(x))
        assert features.shape[1] == sum(member.embed(x).shape[1] for member in members)
    assert ensemble.members == members and ensemble.net is members[0].net
    assert not torch.allclose(own[0], own[1])  # members differ: the test could fail


def test_a_single_model_is_its_own_only_member():
    model = _member(0)
    x = torch.randn(2, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.per_member(x), model(x)[None])
    assert model.members == [model]


def test_an_ensemble_of_u_nets_averages_per_pixel_logits():
    members = [_member(0, "segment"), _member(1, "segment")]
    ensemble = Ensemble(members).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ensemble(x), (members[0](x) + members[1](x)) / 2)
    assert ensemble.dense
    with pytest.raises(ValueError, match="embeddings are for classifiers"):
        ensemble.embed(x)


def test_an_ensemble_needs_two_members():
    with pytest.raises(ValueError, match="at least two members"):
        Ensemble([_member(0)])
