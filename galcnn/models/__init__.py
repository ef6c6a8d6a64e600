"""Networks: a registry of architectures and the group pooling that wraps them.

``create_model(name, n_bands=..., n_classes=..., size=...)`` builds any registered network;
``list_models()`` names them. Registered here: ``resnet`` and ``cnn`` (classifiers,
:mod:`galcnn.models.classifiers`), ``gcnn`` (a classifier invariant to rotations and
reflections by construction, :mod:`galcnn.models.equivariant`) and ``unet`` (segmentation,
:mod:`galcnn.models.unet`).
:class:`GroupPooled` averages a network over a symmetry group (:mod:`galcnn.models.symmetry`);
:class:`Ensemble` averages several trained ones.
"""

from galcnn.models import classifiers, equivariant, unet  # noqa: F401  (register them)
from galcnn.models.ensemble import Ensemble
from galcnn.models.pooled import GroupPooled
from galcnn.models.registry import (Network, create_model, list_models, model_is_invariant,
                                    model_task, register_model)

__all__ = ["Network", "GroupPooled", "Ensemble", "create_model", "list_models", "model_task",
           "model_is_invariant", "register_model", "count_parameters"]


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())
