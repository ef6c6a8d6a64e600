"""Symmetry groups for augmentation: which operations leave a class unchanged is the user's call.

A rotation keeps a spiral's winding sense; a reflection swaps ``spiral_cw`` and
``spiral_acw``. So the groups are offered separately:

``none``      identity only
``rot90``     rotations by multiples of 90 degrees (cyclic group C4): winding sense kept
``dihedral``  rotations and reflections (D4): only for classes that are mirror-symmetric
``rotate``    rotations by any angle (no empty corners; see :func:`geometry.rotate_to_size`)

Elements of D4 are written ``R^k F^f``: first mirror left-right (``f=1``), then rotate by
``k`` quarter turns with :func:`numpy.rot90` on the ``(y, x)`` axes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from galcnn.choices import GROUPS, unknown_choice

__all__ = ["D4", "Rotation", "group_elements", "parse_transform", "choose_transforms",
           "find_mirror_pairs", "check_mirror_pairs", "is_reflection"]


@dataclass(frozen=True)
class D4:
    """An element of the dihedral group of the square."""

    k: int = 0
    flip: bool = False

    def __post_init__(self):
        object.__setattr__(self, "k", self.k % 4)

    @property
    def name(self) -> str:
        rotation = f"rot{90 * self.k}" if self.k else ""
        if self.flip:
            return "flip" + (f"+{rotation}" if rotation else "")
        return rotation or "identity"

    @property
    def is_identity(self) -> bool:
        return self.k == 0 and not self.flip

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Apply to the last two axes ``(y, x)`` of an array; returns a contiguous copy."""
        out = np.flip(image, axis=-1) if self.flip else image
        return np.ascontiguousarray(np.rot90(out, self.k, axes=(-2, -1)))

    def compose(self, other: "D4") -> "D4":
        """``self ∘ other``: apply ``other`` first, then ``self``."""
        sign = -1 if self.flip else 1
        return D4(self.k + sign * other.k, self.flip != other.flip)

    def inverse(self) -> "D4":
        return self if self.flip else D4(-self.k, False)


@dataclass(frozen=True)
class Rotation:
    """A rotation by an arbitrary angle (degrees, counter-clockwise in array axes)."""

    angle: float

    @property
    def name(self) -> str:
        return f"rotate:{self.angle:.2f}"

    @property
    def is_identity(self) -> bool:
        return self.angle % 360 == 0


def group_elements(group: str) -> list[D4]:
    """The elements of a finite group, identity first; ``rotate`` uses ``rot90``'s four."""
    if group == "none":
        return [D4()]
    if group in ("rot90", "rotate"):
        return [D4(k) for k in range(4)]
    if group == "dihedral":
        return [D4(k, f) for f in (False, True) for k in range(4)]
    raise ValueError(unknown_choice("symmetry group", group, GROUPS))


def parse_transform(name: str) -> D4 | Rotation:
    """Inverse of ``.name``: read a manifest's transform column back."""
    match = re.fullmatch(r"rotate:(-?[0-9.]+)(?:,zoom:[0-9.]+)?", name)
    if match:
        return Rotation(float(match[1]))
    match = re.fullmatch(r"(flip)?\+?(?:rot(90|180|270))?", name)
    if name == "identity":
        return D4()
    if match and name:
        return D4(int(match[2] or 0) // 90, bool(match[1]))
    raise ValueError(f"unknown transform {name!r}")


def choose_transforms(group: str, copies: int, rng: np.random.Generator) -> list[D4 | Rotation]:
    """``copies`` distinct non-identity transforms (repeating only when the group runs out).

    For ``rotate`` the angles are evenly spaced with a random phase, so copies cover the circle.
    """
    if copies < 0:
        raise ValueError(f"copies must be >= 0, got {copies}")
    if copies == 0 or group == "none":
        return []
    if group == "rotate":
        phase = rng.uniform(0, 360.0 / (copies + 1))
        return [Rotation(round(float(phase + i * 360.0 / (copies + 1)) % 360.0, 2))
                for i in range(1, copies + 1)]
    others = group_elements(group)[1:]
    chosen: list[D4 | Rotation] = []
    while len(chosen) < copies:
        order = rng.permutation(len(others))
        chosen.extend(others[i] for i in order[: copies - len(chosen)])
    return chosen


#: Class-name pairs that are mirror images of each other, found without the user naming them.
_MIRROR_PATTERNS = [(r"(.*)(?<![a-z])cw$", r"\1acw"), (r"(.*)clockwise$", r"\1anticlockwise"),
                    (r"(.*)(?<![a-z])z$", r"\1s"), (r"(.*)left$", r"\1right")]


def find_mirror_pairs(classes: list[str]) -> list[tuple[str, str]]:
    """Pairs of classes that a reflection exchanges, by name: ``spiral_cw``/``spiral_acw``,
    ``..._clockwise``/``..._anticlockwise``, ``z``/``s``, ``left``/``right``."""
    lower = {c.lower(): c for c in classes}
    pairs = []
    for name in classes:
        for pattern, partner in _MIRROR_PATTERNS:
            match = re.fullmatch(pattern, name.lower())
            if match:
                other = match.expand(partner)
                if other in lower and other != name.lower():
                    pairs.append((name, lower[other]))
    return pairs


def check_mirror_pairs(pairs, classes: list[str]) -> list[tuple[str, str]]:
    """``pairs`` as a list of tuples, each class of each pair one of ``classes`` (ValueError
    else)."""
    checked = [(str(a), str(b)) for a, b in pairs]
    for a, b in checked:
        if a not in classes or b not in classes:
            raise ValueError(f"--mirror-pairs {a}:{b}: both must be classes "
                             f"({', '.join(classes)})")
    return checked


def is_reflection(transform: str) -> bool:
    """Whether a manifest transform (``flip``, ``flip+rot90``, ...) mirrors the image."""
    parsed = parse_transform(transform)
    return isinstance(parsed, D4) and parsed.flip
