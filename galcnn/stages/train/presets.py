"""Named sets of training options for the hardware a run has: ``--preset gpu``.

The defaults of :class:`TrainOptions` are the ``cpu`` preset: what trains the shared GZ1 set
within 30 minutes and MiraBest within 10 on two cores. A GPU affords more of what was
measured to help on the CPU (bench/RESULTS.md, issue 24): more ensemble members, more
epochs with more patience, wider networks. Options given explicitly win over a preset's.
"""

from __future__ import annotations

from dataclasses import replace

from galcnn.choices import TRAIN_PRESETS, unknown_choice
from galcnn.errors import option_error
from galcnn.stages.train.options import TrainError, TrainOptions

__all__ = ["PRESETS", "with_preset"]

PRESETS: dict[str, dict] = {
    "cpu": {},
    "gpu": {"width": 64, "ensemble": 5, "epochs": 100, "patience": 30, "batch_size": 128},
}
"""Each preset's changes to the defaults."""


def with_preset(options: TrainOptions, name: str, given: set[str] | frozenset = frozenset()
                ) -> TrainOptions:
    """``options`` with preset ``name``'s values, except for the fields in ``given`` (set
    by the user, which win)."""
    if name not in TRAIN_PRESETS:
        raise option_error(TrainError, "preset", unknown_choice("{option}", name,
                                                                TRAIN_PRESETS))
    return replace(options, **{k: v for k, v in PRESETS[name].items() if k not in given})
