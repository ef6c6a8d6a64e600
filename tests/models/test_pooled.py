"""Group pooling: invariant classifiers, equivariant maps, the mirror-pair class swap."""

from __future__ import annotations

import torch

from galcnn.models import GroupPooled, create_model
from galcnn.models.symmetry import elements_of, mirror_permutation

CLASSES = ["edge_on", "elliptical", "spiral_acw", "spiral_cw"]


def _model(arch="resnet", group="dihedral", swap=True, size=(32, 32), bands=2):
    torch.manual_seed(0)
    net = create_model(arch, n_bands=bands, n_classes=4, size=size, width=8)
    swap_classes = mirror_permutation(CLASSES, [("spiral_cw", "spiral_acw")]) if swap else None
    return GroupPooled(net, elements_of(group, size), swap_classes).eval()


def test_rotation_pooling_is_invariant():
    model = _model(group="rot90", swap=False)
    x = torch.randn(3, 2, 32, 32)
    with torch.no_grad():
        base = model(x)
        for k in range(1, 4):
            torch.testing.assert_close(model(torch.rot90(x, k, dims=(-2, -1))), base,
                                       atol=1e-5, rtol=1e-5)


def test_dihedral_pooling_swaps_mirror_classes_under_reflection():
    model = _model(group="dihedral", swap=True)
    x = torch.randn(3, 2, 32, 32)
    with torch.no_grad():
        base = model(x)
        mirrored = model(torch.flip(x, dims=(-1,)))
        rotated = model(torch.rot90(x, 1, dims=(-2, -1)))
    torch.testing.assert_close(rotated, base, atol=1e-5, rtol=1e-5)
    # a reflection exchanges spiral_cw and spiral_acw and leaves the other classes alone
    torch.testing.assert_close(mirrored[:, [0, 1, 3, 2]], base, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(mirrored, base, atol=1e-3)


def test_per_element_logits_average_to_the_pooled_ones():
    model = _model()
    x = torch.randn(2, 2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.per_element(x).mean(0), model(x), atol=1e-5,
                                   rtol=1e-5)
    assert model.per_element(x).shape == (8, 2, 4)


def test_pooled_unet_maps_are_equivariant():
    net = create_model("unet", n_bands=2, n_classes=3, depth=2, width=4)
    model = GroupPooled(net, [(k, f) for f in (False, True) for k in range(4)]).eval()
    for shape in ((17, 23), (5, 4), (64, 64)):
        assert model(torch.randn(1, 2, *shape)).shape == (1, 3, *shape)
    x = torch.randn(1, 2, 24, 24)
    with torch.no_grad():
        rotated = model(torch.rot90(x, 1, dims=(-2, -1)))
        torch.testing.assert_close(rotated, torch.rot90(model(x), 1, dims=(-2, -1)),
                                   atol=1e-5, rtol=1e-4)


def test_pooled_unet_swaps_mirror_classes_of_reflected_maps():
    torch.manual_seed(1)
    net = create_model("unet", n_bands=1, n_classes=4, depth=2, width=4)
    model = GroupPooled(net, elements_of("dihedral"), [0, 2, 1, 3]).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        base, mirrored = model(x), model(torch.flip(x, dims=(-1,)))
        per_element = model.per_element(x)
    torch.testing.assert_close(torch.flip(mirrored, dims=(-1,))[:, [0, 2, 1, 3]], base,
                               atol=1e-5, rtol=1e-4)
    assert per_element.shape == (8, 2, 4, 16, 16)
    torch.testing.assert_close(per_element.mean(0), base, atol=1e-5, rtol=1e-4)


def test_the_trivial_group_is_the_bare_network():
    net = create_model("cnn", n_bands=1, n_classes=3, size=(16, 16), width=8).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(GroupPooled(net)(x), net(x))


def test_embeddings_do_not_change_when_the_input_turns_or_mirrors():
    model = _model(arch="cnn")
    x = torch.randn(3, 2, 32, 32)
    with torch.no_grad():
        base = model.embed(x)
        assert base.shape == (3, 128)  # the compact CNN's last hidden layer
        for k, flip in ((1, False), (2, True), (3, True)):
            turned = torch.rot90(torch.flip(x, dims=(-1,)) if flip else x, k, dims=(-2, -1))
            torch.testing.assert_close(model.embed(turned), base, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(base[0], base[1])
