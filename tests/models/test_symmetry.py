"""Symmetry groups on tensors: elements, mirror-image class pairs, random augmentation."""

from __future__ import annotations

import numpy as np
import torch

from galcnn.data.augment import D4
from galcnn.models.symmetry import (apply_element, elements_of, find_mirror_pairs,
                                    invert_element, mirror_permutation, random_elements,
                                    random_rotations)

CLASSES = ["edge_on", "elliptical", "spiral_acw", "spiral_cw"]


def test_non_square_images_keep_only_shape_preserving_elements():
    assert elements_of("dihedral", (64, 48)) == [(0, False), (2, False), (0, True), (2, True)]
    assert len(elements_of("dihedral", (48, 48))) == 8


def test_torch_elements_match_numpy_group():
    image = np.random.default_rng(1).normal(size=(2, 5, 7)).astype(np.float32)
    for k, flip in elements_of("dihedral"):
        expected = D4(k, flip)(image)
        got = apply_element(torch.from_numpy(image), k, flip).numpy()
        np.testing.assert_array_equal(got, expected)


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


def test_invert_element_undoes_apply_element():
    x = torch.randn(1, 2, 5, 5)
    for k, flip in elements_of("dihedral"):
        torch.testing.assert_close(invert_element(apply_element(x, k, flip), k, flip), x)


def test_augmentation_reads_nothing_back_from_the_device():
    """The choices are drawn on the CPU and applied by selection: on the meta device, which
    holds no data at all, augmentation still runs, so no step of it reads a count, an index
    or a value back from the device (on a GPU each such read waits for every queued kernel;
    tests marked gpu check whole training steps with torch's sync debug mode)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.empty(16, 3, 8, 8, device="meta")
    labels = torch.empty(16, dtype=torch.long, device="meta")
    out, new = random_elements(x, labels, elements_of("dihedral"), [0, 1, 3, 2], generator)
    assert out.device.type == new.device.type == "meta"
    assert out.shape == x.shape and new.shape == labels.shape
    maps = torch.empty(16, 8, 8, dtype=torch.long, device="meta")
    _, new_maps = random_elements(x, maps, elements_of("rot90"), None, generator)
    assert new_maps.shape == maps.shape
    assert random_rotations(x, generator).shape == x.shape


def test_random_elements_transform_pixel_maps_with_their_images():
    x = torch.arange(8 * 5 * 5, dtype=torch.float32).view(8, 1, 5, 5)
    maps = x[:, 0].long() % 3
    out, new = random_elements(x, maps, elements_of("dihedral"), [0, 2, 1],
                               torch.Generator().manual_seed(3))
    swap = torch.tensor([0, 2, 1])
    for i in range(8):
        (k, flip), = [(k, f) for k, f in elements_of("dihedral")
                      if torch.equal(apply_element(x[i], k, f), out[i])]
        expected = apply_element(maps[i], k, flip)
        assert torch.equal(new[i], swap[expected] if flip else expected)
