import itertools

import numpy as np
import pytest

from galcnn.data.augment import D4, Rotation, choose_transforms, group_elements, parse_transform
from galcnn.data.simulate import simulate_cutout, spiral_winding

ELEMENTS = group_elements("dihedral")


def _asymmetric():
    return np.random.default_rng(0).normal(size=(2, 7, 7))


def test_group_sizes():
    assert [len(group_elements(g)) for g in ("none", "rot90", "dihedral")] == [1, 4, 8]
    assert all(not g.flip for g in group_elements("rot90"))


@pytest.mark.parametrize("a,b", list(itertools.product(ELEMENTS, ELEMENTS)))
def test_composition_matches_applying_in_turn(a, b):
    image = _asymmetric()
    np.testing.assert_array_equal(a.compose(b)(image), a(b(image)))


@pytest.mark.parametrize("g", ELEMENTS)
def test_inverse_undoes_and_identity_is_neutral(g):
    image = _asymmetric()
    np.testing.assert_array_equal(g.inverse()(g(image)), image)
    assert g.compose(g.inverse()).is_identity and g.compose(D4()) == g


def test_closure_and_distinct_elements():
    image = _asymmetric()
    results = {g(image).tobytes() for g in ELEMENTS}
    assert len(results) == 8
    assert {a.compose(b) for a in ELEMENTS for b in ELEMENTS} == set(ELEMENTS)


def test_rotations_keep_winding_sense_and_flips_swap_it():
    rng = np.random.default_rng(5)
    for kind, sense in (("spiral_cw", -1), ("spiral_acw", 1)):
        image = simulate_cutout(kind, snr=40, rng=rng, n_neighbours=0).image[0]
        assert spiral_winding(image) == sense
        for g in ELEMENTS:
            expected = -sense if g.flip else sense
            assert spiral_winding(g(image)) == expected, (kind, g.name)


def test_names_round_trip():
    for g in ELEMENTS:
        assert parse_transform(g.name) == g
    assert parse_transform("rotate:12.50,zoom:1.200") == Rotation(12.5)
    with pytest.raises(ValueError):
        parse_transform("shear")


def test_choose_transforms_distinct_and_seeded():
    rng = np.random.default_rng(0)
    chosen = choose_transforms("dihedral", 7, rng)
    assert len(set(chosen)) == 7 and D4() not in chosen
    assert len(choose_transforms("rot90", 5, np.random.default_rng(0))) == 5
    again = choose_transforms("dihedral", 7, np.random.default_rng(0))
    assert again == chosen
    angles = [t.angle for t in choose_transforms("rotate", 3, np.random.default_rng(1))]
    gaps = np.diff(sorted(angles))
    np.testing.assert_allclose(gaps, 90.0, atol=0.02)
    assert choose_transforms("none", 3, rng) == []
