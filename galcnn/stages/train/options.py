"""What defines a training run: :class:`TrainOptions`, stored in ``config.json`` and the card."""

from __future__ import annotations

from dataclasses import dataclass

from galcnn.choices import CLASS_WEIGHTS, MONITORS, SCHEDULES, SYMMETRIES, TASKS, unknown_choice
from galcnn.errors import GalcnnError, check_bounds, option_error
from galcnn.models import list_models

__all__ = ["TrainOptions", "TrainError"]


class TrainError(GalcnnError):
    """Training cannot start (bad data, options, or run directory); explained in one line."""


@dataclass
class TrainOptions:
    """Everything that defines a training run. ``auto``/None values mean the task's default
    (see :mod:`galcnn.stages.train.tasks`)."""

    task: str = "classify"
    arch: str = "auto"
    """A registered architecture; auto: ``resnet`` to classify, ``unet`` to segment."""
    width: int | None = None
    """Channels of the first stage; None: 32 (classifiers) or 16 (U-Net)."""
    depth: int = 3
    """U-Net: number of poolings."""
    dropout: float | None = None
    """None: 0.3 (classifiers) or 0 (U-Net)."""
    symmetry: str = "auto"
    mirror_pairs: list[tuple[str, str]] | None = None
    epochs: int = 50
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    schedule: str = "cosine"
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.05
    class_weights: str = "auto"
    balanced_sampling: bool = False
    monitor: str = "auto"
    """auto: ``macro_f1`` to classify, ``mean_iou`` to segment; or ``loss``."""
    patience: int = 15
    refresh_bn: bool = True
    """Measure batch-norm statistics afresh on the training split before each validation
    (:func:`galcnn.inference.refresh_batch_norm`); False: training's running averages."""
    refresh_bn_augmented: bool = False
    """Measure them on training inputs augmented as in training (fixed draws), not plain."""
    ema_epochs: float = 0.0
    """Validate and keep an exponential moving average of the weights over about this many
    epochs (0: the weights as trained)."""
    ensemble: int = 1
    """Members trained with seeds ``seed``, ``seed + 1``, ... and run as one model
    (:mod:`galcnn.stages.train.ensemble`)."""
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    amp: bool = True
    dist_timeout: float = 30.0
    """Minutes a gradient exchange between distributed processes may wait for a slow one."""
    init_from: str | None = None
    freeze: int = 0

    def check(self) -> None:
        """Raise :class:`TrainError` for a value no task accepts."""
        if self.task not in TASKS:
            raise option_error(TrainError, "task", unknown_choice("{option}", self.task, TASKS))
        allowed = list_models(self.task)
        if self.arch not in ("auto", *allowed):
            raise option_error(TrainError, "arch", f"{{option}} {self.arch} cannot {self.task}; "
                               f"choose one of {', '.join(allowed)}")
        for name, value, choices in (("symmetry", self.symmetry, SYMMETRIES),
                                     ("schedule", self.schedule, SCHEDULES),
                                     ("monitor", self.monitor, MONITORS),
                                     ("class_weights", self.class_weights, CLASS_WEIGHTS)):
            if value not in choices:
                raise option_error(TrainError, name, unknown_choice("{option}", value, choices))
        check_bounds(TrainError, self, (
            ("depth", 1 <= self.depth <= 6, "between 1 and 6"),
            ("ema_epochs", self.ema_epochs >= 0, ">= 0"),
            ("ensemble", 1 <= self.ensemble <= 32, "between 1 and 32"),
            ("dist_timeout", self.dist_timeout > 0, "positive (minutes)"),
            ("epochs", self.epochs >= 1, "positive"),
            ("batch_size", self.batch_size >= 1, "positive"),
            ("lr", self.lr > 0, "positive")))
