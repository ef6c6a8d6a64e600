"""The names a user can choose from, declared once and free of heavy imports, so that the
command line can offer them (and ``--help`` stays instant) and the library can check them.

Architectures: galcnn's own are named here; :mod:`galcnn.models` holds them and any others.
"""

STRETCH_NAMES = ("asinh", "peak", "percentile", "zscale", "log", "linear", "none")
#: What a recipe may name: a stretch, or ``auto`` (resolved by prepare for the task).
STRETCH_CHOICES = ("auto",) + STRETCH_NAMES
STRETCH_SCOPES = ("image", "band")
FILL_METHODS = ("median", "zero")
FIT_MODES = ("crop", "resize")
DTYPES = ("float32", "float16")
GROUPS = ("none", "rot90", "dihedral", "rotate")
"""Symmetry groups of augmentation and pooling."""
SYMMETRIES = ("auto", *GROUPS)
TASKS = ("classify", "segment")
SCHEDULES = ("cosine", "onecycle")
MONITORS = ("auto", "macro_f1", "mean_iou", "loss")
CLASS_WEIGHTS = ("auto", "none")
TRAIN_PRESETS = ("cpu", "gpu")
"""Named sets of training options (:mod:`galcnn.stages.train.presets`)."""
ARCHITECTURES = ("resnet", "cnn", "gcnn", "unet")
"""galcnn's own architectures (others may be registered: :mod:`galcnn.models.registry`),
named here so that the command line knows them without importing the networks."""
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
"""What ``--device`` takes; ``cuda:N`` names the GPU numbered N."""
SPLITS = ("all", "train", "val", "test")
"""Splits of a prepared dataset that ``evaluate`` scores."""
TABLE_FORMATS = ("csv", "fits")
"""Formats of ``predict`` tables and ``segment`` catalogues."""


def unknown_choice(what: str, value, choices) -> str:
    """The one message for a value that is not one of its choices."""
    return f"unknown {what} {value!r}; choose one of {', '.join(choices)}"


def parse_device(name: str) -> tuple[str, int | None]:
    """``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N`` as (kind, index); ValueError else."""
    import re

    match = re.fullmatch(r"(auto|cpu|mps|cuda)(?::(\d+))?", str(name).strip().lower())
    if not match or (match[2] is not None and match[1] != "cuda"):
        raise ValueError(unknown_choice("device", name, DEVICES))
    return match[1], None if match[2] is None else int(match[2])
