"""Every registered model, checked the same way: a new model needs no new test code."""

from __future__ import annotations

import pytest
import torch

from galcnn.card import ModelCard
from galcnn.checkpoint import load_model, save_checkpoint
from galcnn.data.recipe import Preprocess
from galcnn.models import Network, create_model, list_models, model_task, register_model

ARGS = {"n_bands": 2, "n_classes": 3, "size": (32, 32), "width": 8}


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_and_the_shared_interface(name):
    torch.manual_seed(0)
    net = create_model(name, **ARGS)
    assert isinstance(net, Network) and net.task == model_task(name) and net.num_classes == 3
    x = torch.randn(4, 2, 32, 32)
    logits = net(x)
    expected = (4, 3) if net.task == "classify" else (4, 3, 32, 32)
    assert logits.shape == expected and torch.isfinite(logits).all()
    (logits ** 2).mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net.forward_head(net.forward_features(x)), net(x))
        assert net.forward_head(net.forward_features(x), pre_logits=True).shape[0] == 4
    blocks = net.feature_blocks()
    assert blocks and all(isinstance(b, torch.nn.Module) for b in blocks)
    if net.task == "segment":  # what tiling a field of any size relies on
        multiple, radius = net.multiple, net.receptive_radius()
        assert isinstance(multiple, int) and multiple >= 1 and 32 % multiple == 0
        assert isinstance(radius, int) and radius >= multiple


def test_a_network_that_does_not_declare_its_tiling_says_so():
    class Bare(Network):
        task = "segment"

    with pytest.raises(NotImplementedError, match="Bare does not declare its multiple"):
        Bare().multiple
    with pytest.raises(NotImplementedError, match="receptive radius"):
        Bare().receptive_radius()


@pytest.mark.parametrize("name", list_models())
def test_a_saved_card_rebuilds_the_same_model(name, tmp_path):
    torch.manual_seed(0)
    net = create_model(name, **ARGS).eval()
    task = model_task(name)
    card = ModelCard(task=task, classes=["a", "b", "c"], model=name, model_args=ARGS,
                     preprocess=Preprocess(bands=("g", "r"), size=(32, 32)))
    path = str(tmp_path / "model.pt")
    save_checkpoint(path, card, net.state_dict())
    model = load_model(path)
    assert model.card == card
    x = torch.randn(2, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x))


def test_unknown_names_and_duplicate_registration():
    with pytest.raises(ValueError, match="unknown architecture 'vit'; choose one of resnet"):
        create_model("vit", **ARGS)
    with pytest.raises(ValueError, match="already registered"):
        register_model("resnet")(lambda **kwargs: None)
    assert list_models("segment") == ["unet"]
