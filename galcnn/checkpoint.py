"""Checkpoints that carry everything a later command needs, loaded without running pickled code.

A checkpoint is a dict of tensors and plain Python values (``torch.load(weights_only=True)``
accepts nothing else): ``card`` (:class:`galcnn.card.ModelCard` as plain values), ``model``
(the network's weights) and, in ``last.pt``, the optimizer, scheduler, scaler and RNG states
and the training history for resuming. It is written to a temporary file and renamed, so a
job killed while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import zipfile

import torch

from galcnn.card import ModelCard
from galcnn.data.atomic import atomic_output
from galcnn.errors import GalcnnError
from galcnn.models import Ensemble, GroupPooled, create_model

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "read_checkpoint",
           "load_model", "model_of", "build_model", "resolve_checkpoint", "file_checksum"]

CHECKPOINT_FORMAT = "galcnn-checkpoint"
CHECKPOINT_VERSION = 3
"""3: an ensemble's other members under ``members`` (a galcnn that reads only 2 would run
its first member alone, so it must refuse it); a checkpoint of one model is still written
as 2."""


class CheckpointError(GalcnnError):
    """The file is missing, unreadable, or not a usable galcnn checkpoint."""


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


def save_checkpoint(path: str, card: ModelCard, weights: dict, **state) -> None:
    """Write ``card``, the network ``weights`` and any resume ``state`` atomically; an
    ensemble's other members' weights go in ``members`` (a list)."""
    buffer = io.BytesIO()  # torch.save on a full disk says only "basic_ios::clear"
    version = CHECKPOINT_VERSION if state.get("members") else 2
    torch.save({"format": CHECKPOINT_FORMAT, "format_version": version,
                "card": card.to_dict(), "model": weights, **state}, buffer)
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        handle.write(buffer.getbuffer())
        handle.flush()
        os.fsync(handle.fileno())


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict:
    """The stored dict, with ``card`` as a :class:`ModelCard`; anything that is not a galcnn
    checkpoint is refused with a one-line :class:`CheckpointError`."""
    return read_checkpoint(path, map_location)[0]


def read_checkpoint(path: str, map_location: str | torch.device = "cpu") -> tuple[dict, str]:
    """:func:`load_checkpoint` and the file's SHA-256, from one read of the file."""
    path = resolve_checkpoint(path)
    with open(path, "rb") as handle:
        content = handle.read()
    checksum = hashlib.sha256(content).hexdigest()
    return _loaded(path, io.BytesIO(content), map_location), checksum


def _loaded(path: str, content: io.BytesIO, map_location) -> dict:
    if not zipfile.is_zipfile(content):
        raise CheckpointError(f"{path}: not a galcnn checkpoint (not a file written by "
                              "torch.save, or a damaged one)")
    _check_records(path, content)
    content.seek(0)
    try:
        state = torch.load(content, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported (?:global: GLOBAL|class) (\S+)", str(exc))
        name = found and re.sub(r"^(__builtin__|builtins)\.", "", found[1])  # torch < 2.6
        what = f"the Python object {name}" if found else "Python objects"
        raise CheckpointError(f"{path}: not a galcnn checkpoint (it asks for {what}, which is "
                              "never loaded because it could run code)") from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError, AttributeError,
            ValueError) as exc:
        raise CheckpointError(f"{path}: not a galcnn checkpoint (a damaged torch file: "
                              f"{type(exc).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a galcnn checkpoint (a torch file without a galcnn "
                              "model card)")
    if state.get("format_version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: written by a newer galcnn (format "
                              f"{state['format_version']}); upgrade galcnn")
    try:
        state["card"] = ModelCard.from_dict(state["card"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged galcnn checkpoint (its model card is "
                              f"incomplete: {type(exc).__name__} {exc})") from None
    if not isinstance(state.get("model"), dict):
        raise CheckpointError(f"{path}: damaged galcnn checkpoint (no weights)")
    members = state.get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise CheckpointError(f"{path}: damaged galcnn checkpoint (its ensemble's members "
                              "are not weights)")
    return state


def _check_records(path: str, content: io.BytesIO) -> None:
    """torch.save stores every record as it is: a compressed one (which could inflate a
    few megabytes into gigabytes before torch reads a byte of it) is refused unread."""
    try:
        with zipfile.ZipFile(content) as archive:
            packed = [info.filename for info in archive.infolist()
                      if info.compress_type != zipfile.ZIP_STORED]
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: not a galcnn checkpoint (a damaged torch file: "
                              f"{type(exc).__name__})") from None
    if packed:
        raise CheckpointError(f"{path}: not a galcnn checkpoint (it holds compressed records, "
                              f"which torch.save never writes: {packed[0]})")


def _check_fits(card: ModelCard, weights: dict, path: str) -> None:
    """The network the card describes has exactly the weights' shapes: checked on the meta
    device (no memory), so a card that describes a giant network next to small weights is
    refused before anything is allocated."""
    try:
        with torch.device("meta"):
            expected = create_model(card.model, **card.model_args).state_dict()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: damaged galcnn checkpoint (its card describes no "
                              f"network: {str(exc).splitlines()[0][:120]})") from None
    for name, tensor in expected.items():
        stored = weights.get(name)
        if not isinstance(stored, torch.Tensor) or tuple(stored.shape) != tuple(tensor.shape):
            got = "missing" if stored is None else tuple(getattr(stored, "shape", ()))
            raise CheckpointError(f"{path}: damaged galcnn checkpoint (weights do not fit its "
                                  f"card: {name} is {got}, the card's "
                                  f"{card.model} needs {tuple(tensor.shape)})")


def build_model(card: ModelCard) -> GroupPooled:
    """The network the card describes, pooled over its symmetry group, untrained."""
    net = create_model(card.model, **card.model_args)
    model = GroupPooled(net, card.elements, card.mirror_swap)
    model.card = card
    return model


def load_model(path: str, device: str | torch.device = "cpu") -> GroupPooled:
    """The model of a checkpoint or run directory, in eval mode; ``model.card`` is its card."""
    return model_of(load_checkpoint(path), path).to(device).eval()


def model_of(state: dict, path: str) -> GroupPooled:
    """The model a loaded checkpoint holds (its card checked against its weights first): an
    :class:`~galcnn.models.Ensemble` when it holds several members."""
    members = [_member(state["card"], weights, path)
               for weights in [state["model"], *state.get("members", [])]]
    if len(members) == 1:
        return members[0]
    model = Ensemble(members)
    model.card = state["card"]
    return model


def _member(card: ModelCard, weights: dict, path: str) -> GroupPooled:
    _check_fits(card, weights, resolve_checkpoint(path))
    try:
        model = build_model(card)
        model.net.load_state_dict(weights)
    except (TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{resolve_checkpoint(path)}: damaged galcnn checkpoint (weights "
                              f"do not fit its card: {first[:120]})") from None
    return model


def file_checksum(path: str) -> str:
    """SHA-256 of a checkpoint, to name the exact model in provenance keywords and headers."""
    digest = hashlib.sha256()
    with open(resolve_checkpoint(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
