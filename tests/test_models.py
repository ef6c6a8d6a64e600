"""Networks, symmetry pooling and on-the-fly augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galcnn.data.augment import D4
from galcnn.models import GroupPooled, count_parameters, create_model
from galcnn.models.symmetry import (apply_element, elements_of, find_mirror_pairs, mirror_permutation,
                             random_elements, random_rotations)

CLASSES = ["edge_on", "elliptical", "spiral_acw", "spiral_cw"]


def _model(arch="resnet", group="dihedral", swap=True, size=(32, 32), bands=2):
    torch.manual_seed(0)
    net = create_model(arch, n_bands=bands, n_classes=4, size=size, width=8)
    swap_classes = mirror_permutation(CLASSES, [("spiral_cw", "spiral_acw")]) if swap else None
    return GroupPooled(net, elements_of(group, size), swap_classes).eval()


@pytest.mark.parametrize("arch", ["resnet", "cnn"])
@pytest.mark.parametrize("size", [(32, 32), (64, 48), (150, 150), (20, 20)])
def test_any_size_and_band_count(arch, size):
    model = _model(arch, size=size, bands=3)
    logits = model(torch.randn(2, 3, *size))
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()
    assert count_parameters(model) > 1000


def test_non_square_images_keep_only_shape_preserving_elements():
    assert elements_of("dihedral", (64, 48)) == [(0, False), (2, False), (0, True), (2, True)]
    assert len(elements_of("dihedral", (48, 48))) == 8


def test_torch_elements_match_numpy_group():
    image = np.random.default_rng(1).normal(size=(2, 5, 7)).astype(np.float32)
    for k, flip in elements_of("dihedral"):
        expected = D4(k, flip)(image)
        got = apply_element(torch.from_numpy(image), k, flip).numpy()
        np.testing.assert_array_equal(got, expected)


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


def test_mirror_pairs_found_by_name():
    assert find_mirror_pairs(CLASSES) == [("spiral_cw", "spiral_acw")]
    assert find_mirror_pairs(["S_clockwise", "S_anticlockwise", "E"]) == \
        [("S_clockwise", "S_anticlockwise")]
    assert find_mirror_pairs(["FRI", "FRII"]) == []
    assert find_mirror_pairs(["spiral_cw", "elliptical"]) == []
    assert mirror_permutation(CLASSES, [("spiral_cw", "spiral_acw")]) == [0, 1, 3, 2]


def test_random_elements_swap_labels_of_reflected_samples():
    x = torch.arange(16 * 4 * 4, dtype=torch.float32).view(16, 1, 4, 4)
    labels = torch.tensor([3] * 16)
    generator = torch.Generator().manual_seed(0)
    swap = [0, 1, 3, 2]
    out, new = random_elements(x, labels, elements_of("dihedral"), swap, generator)
    for i in range(16):
        matches = [(k, f) for k, f in elements_of("dihedral")
                   if torch.equal(apply_element(x[i], k, f), out[i])]
        assert len(matches) == 1
        assert int(new[i]) == (2 if matches[0][1] else 3)
    assert set(new.tolist()) == {2, 3}  # 16 draws from 8 elements use both kinds
    same, kept = random_elements(x, labels, elements_of("none"), swap, generator)
    assert same is x and torch.equal(kept, labels)


def test_random_rotations_keep_shape_and_fill_corners():
    x = torch.ones(4, 1, 16, 16)
    out = random_rotations(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    torch.testing.assert_close(out, x)  # a constant image stays constant: no empty corners
