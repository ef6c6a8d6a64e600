"""galcnn: CNN morphology classifiers and U-Net saliency maps for astronomical FITS cutouts.

The public API, one import away::

    from galcnn import prepare, train, evaluate, predict, embed, segment, load_model

Each stage takes its inputs, its output and one options object (``PrepareOptions``,
``TrainOptions``, ``EvaluateOptions``, ``PredictOptions``, ``EmbedOptions``,
``SegmentOptions``); keyword arguments change fields of it: ``predict(run, files, out,
resume=True)``.

Layers, each importing only from those below it:

``galcnn.cli``       the command line (one module per command)
``galcnn.stages``    what the commands do: prepare, train, evaluate, predict, embed,
                     explain, similar, segment
``galcnn.runner``    a loaded model, the input pipeline, table sinks, provenance, the
                     stream loop, the training-set builder: what the stages are made of
``galcnn.inference``, ``galcnn.checkpoint``, ``galcnn.card``, ``galcnn.metrics``,
``galcnn.losses``, ``galcnn.plots``, ``galcnn.runtime``, ``galcnn.progress``
                     running models, their cards and checkpoints, scores, devices
``galcnn.models``    the registry of networks and their symmetry pooling
``galcnn.data``      FITS in, the preprocessing recipe, prepared datasets out
"""

from __future__ import annotations

import importlib

__version__ = "0.2.0"

#: Public names and the modules that define them; imported on first use, so that importing
#: galcnn (and ``galcnn --help``) does not import torch.
_EXPORTS = {
    "prepare": "galcnn.stages.prepare", "PrepareOptions": "galcnn.stages.prepare",
    "train": "galcnn.stages.train", "TrainOptions": "galcnn.stages.train",
    "evaluate": "galcnn.stages.evaluate", "EvaluateOptions": "galcnn.stages.evaluate",
    "predict": "galcnn.stages.predict", "PredictOptions": "galcnn.stages.predict",
    "embed": "galcnn.stages.embed", "EmbedOptions": "galcnn.stages.embed",
    "segment": "galcnn.stages.segment", "SegmentOptions": "galcnn.stages.segment",
    "load_model": "galcnn.checkpoint", "ModelCard": "galcnn.card",
    "Preprocess": "galcnn.data.recipe", "Stretch": "galcnn.data.stretch",
    "PreparedDataset": "galcnn.data.dataset", "GalcnnError": "galcnn.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'galcnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
