"""Attribution maps: shapes, symmetry, completeness, and a model left as it was."""

from __future__ import annotations

import pytest
import torch

from galcnn.attribution import grad_cam, integrated_gradients
from galcnn.models import GroupPooled, create_model
from galcnn.models.symmetry import apply_element, elements_of


def _model(arch="resnet", group="rot90", seed=0):
    torch.manual_seed(seed)
    net = create_model(arch, n_bands=1, n_classes=3, size=(24, 24), width=8)
    with torch.no_grad():  # positive evidence for every class: Grad-CAM keeps the positive part
        net.head[-1].weight.abs_()
    return GroupPooled(net, elements_of(group)).eval()


@pytest.mark.parametrize("arch", ["resnet", "gcnn"])
def test_a_grad_cam_map_turns_with_the_cutout(arch):
    model = _model(arch)
    x, target = torch.randn(2, 1, 24, 24), torch.tensor([0, 2])
    cam = grad_cam(model, x, target)
    assert cam.shape == (2, 24, 24) and (cam >= 0).all() and cam.sum() > 0
    turned = grad_cam(model, apply_element(x, 1, False), target)
    torch.testing.assert_close(turned, apply_element(cam, 1, False), rtol=1e-3, atol=1e-5)
    other = grad_cam(model, x, torch.tensor([1, 1]))
    assert not torch.allclose(other, cam)  # another class, another map


def test_integrated_gradients_add_up_to_the_change_of_the_logit():
    model = _model(group="none")
    x, target = torch.randn(3, 1, 24, 24), torch.tensor([0, 1, 2])
    attribution = integrated_gradients(model, x, target, steps=128)
    assert attribution.shape == x.shape
    with torch.no_grad():
        change = (model(x) - model(torch.zeros_like(x)))[torch.arange(3), target]
    torch.testing.assert_close(attribution.sum((1, 2, 3)), change, rtol=0.05, atol=0.02)


def test_the_model_is_left_as_it_was():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grad_cam(model, torch.randn(1, 1, 24, 24), torch.tensor([0]))
    integrated_gradients(model, torch.randn(1, 1, 24, 24), torch.tensor([0]), steps=4)
    assert all(p.grad is None for p in model.parameters()) and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_an_ensembles_grad_cam_is_the_mean_of_its_members_maps():
    from galcnn.models import Ensemble

    members = [_model(seed=0), _model(seed=1)]
    x, target = torch.randn(2, 1, 24, 24), torch.tensor([0, 2])
    own = [grad_cam(member, x, target) for member in members]
    assert not torch.allclose(own[0], own[1])
    torch.testing.assert_close(grad_cam(Ensemble(members).eval(), x, target),
                               (own[0] + own[1]) / 2)
