"""A registry of architectures: every network is built by name from plain keyword arguments.

The name and the arguments are what a model card stores, so a checkpoint rebuilds its network
without executing pickled code. A factory is registered with :func:`register_model`; every
network it returns follows :class:`Network`'s interface, which is what training, fine-tuning,
pooling and inference rely on (never on a network's own attribute names).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Network", "register_model", "create_model", "list_models", "model_task",
           "model_is_invariant"]

TASKS = ("classify", "segment")


class Network(nn.Module):
    """The interface every registered network has (after timm's models).

    ``forward(x)`` is ``forward_head(forward_features(x))`` and returns logits: ``(batch,
    classes)`` for classifiers, ``(batch, classes, y, x)`` for segmentation networks.
    """

    task: str = "classify"
    num_classes: int
    channels_last_weights: bool = True
    """Keep 4-d weights channels-last, as the inputs are (faster convolutions). A network
    that builds its convolution weights anew in each pass (``gcnn``) keeps its parameters
    in their own layout: their gradients then come in that layout, which is the one
    DistributedDataParallel's buckets expect."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Logits from features; ``pre_logits``: the representation the last layer reads."""
        raise NotImplementedError

    def feature_blocks(self) -> list[nn.Module]:
        """The feature-extracting blocks in input order (what ``--freeze N`` counts)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    # What segmentation networks declare, for tiling a field of any size (``segment``):
    @property
    def multiple(self) -> int:
        """Tile corners on multiples of this keep the result independent of the tiling
        (the product of the downsampling strides)."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its multiple")

    def receptive_radius(self) -> int:
        """Pixels on each side that can influence an output pixel (an upper bound): the
        context a tile needs so that tiling does not change the result."""
        raise NotImplementedError(f"{type(self).__name__} does not declare its receptive "
                                  "radius")


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Network]
    task: str
    invariant: bool


_REGISTRY: dict[str, _Entry] = {}


def register_model(name: str, *, task: str = "classify", invariant: bool = False):
    """Decorator: register ``factory(n_bands, n_classes, size=None, **options) -> Network``.

    ``invariant``: the network is invariant to right-angle rotations and reflections by
    construction, so it is never pooled over copies; its factory takes ``mirror_swap``, the
    class permutation a reflection applies (:func:`galcnn.models.symmetry.mirror_permutation`).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}")

    def decorate(factory):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = _Entry(factory, task, invariant)
        return factory

    return decorate


def list_models(task: str | None = None) -> list[str]:
    """Registered names (in registration order), for one task or all."""
    return [name for name, entry in _REGISTRY.items() if task in (None, entry.task)]


def model_task(name: str) -> str:
    return _entry(name).task


def model_is_invariant(name: str) -> bool:
    return _entry(name).invariant


def create_model(name: str, **kwargs) -> Network:
    """Build a registered network: ``create_model("resnet", n_bands=3, n_classes=6,
    size=(64, 64))``."""
    network = _entry(name).factory(**kwargs)
    network.task = _entry(name).task
    return network


def _entry(name: str) -> _Entry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; choose one of "
                         f"{', '.join(_REGISTRY)}")
    return _REGISTRY[name]
