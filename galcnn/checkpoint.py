"""Checkpoints that carry everything a later command needs, loaded without running pickled code.

A checkpoint is a dict of tensors and plain Python values (``torch.load(weights_only=True)``
accepts nothing else): ``card`` (the model card: classes, bands, size, stretch, architecture,
symmetry, temperature, metrics, provenance), ``model`` (weights) and, for resuming, the
optimizer, scheduler, scaler and RNG states. It is written to a temporary file and renamed, so
a job killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile

import torch

from galcnn.models import SymmetryPooled, build_model

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "load_model", "resolve_checkpoint", "file_checksum"]

CHECKPOINT_FORMAT = "galcnn-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """The file is missing, unreadable, or not a galcnn checkpoint."""


def resolve_checkpoint(path: str) -> str:
    """A checkpoint file, or a run directory (its ``best.pt``, else ``last.pt``)."""
    if os.path.isdir(path):
        for name in ("best.pt", "last.pt"):
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise CheckpointError(f"{path}: run directory holds no best.pt or last.pt")
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint file or run directory")
    return path


def save_checkpoint(path: str, state: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save({"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **state},
                   tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict:
    """Load with ``weights_only=True``; anything else than a galcnn checkpoint is refused."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError,
            AttributeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable galcnn checkpoint ({first[:160]})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a galcnn checkpoint (a torch file without a galcnn "
                              "model card)")
    if state.get("format_version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: written by a newer galcnn (format "
                              f"{state['format_version']}); upgrade galcnn")
    return state


def load_model(path: str, device: str | torch.device = "cpu") -> tuple[SymmetryPooled, dict]:
    """The model in eval mode and its card, from a checkpoint or run directory."""
    state = load_checkpoint(path)
    card = state["card"]
    model = build_model(card["model"])
    model.net.load_state_dict(state["model"])
    return model.to(device).eval(), card


def file_checksum(path: str) -> str:
    """SHA-256 of a file, to name the exact model in provenance keywords and CSV headers."""
    digest = hashlib.sha256()
    with open(resolve_checkpoint(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
