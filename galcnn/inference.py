"""Running a model: batched forward passes without autograd, pooled over the model's group.

There is one forward path, :func:`forward`, and it is what training validates with, what
``evaluate`` scores, what ``predict`` writes and what ``segment`` maps: the model pooled over
its symmetry group (:class:`galcnn.models.GroupPooled`). :class:`Predictor` wraps a loaded
model for the commands (device, mixed precision, calibrated beliefs, the spread across group
copies and Monte-Carlo dropout samples); :func:`dataset_logits` and :func:`pixel_confusion`
score a whole prepared split.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from galcnn.data.dataset import PreparedDataset
from galcnn.losses import segmentation_loss
from galcnn.models import GroupPooled
from galcnn.runtime import amp_dtype, autocast, configure_precision, precision_of

__all__ = ["Predictor", "forward", "as_batch", "dataset_logits", "dataset_embeddings",
           "refresh_batch_norm", "pixel_confusion"]


_NUMPY = {torch.float32: np.float32, torch.long: np.int64}


def as_batch(images: np.ndarray | torch.Tensor, device: torch.device,
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(n, bands, y, x)`` images as float32 on ``device``, channels-last, copied without
    waiting for the device (pinned); other arrays (``dtype``, such as pixel targets) as they
    are."""
    if isinstance(images, torch.Tensor):
        x = images.to(device).to(dtype)
    else:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=_NUMPY[dtype]))
        if device.type == "cuda":
            x = x.pin_memory()
        x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def forward(model: GroupPooled, x: torch.Tensor, dtype: torch.dtype | None = None, *,
            per_element: bool = False, per_member: bool = False) -> torch.Tensor:
    """Pooled logits as float32, no autograd; or every group copy's (``per_element``: of
    every member too) or every ensemble member's (``per_member``), stacked first."""
    with torch.inference_mode(), autocast(x.device, dtype):
        if per_element:
            logits = model.per_element(x)
        else:
            logits = model.per_member(x) if per_member else model(x)
    return logits.float()


class Predictor:
    """A loaded model ready to run on batches of preprocessed inputs.

    ``mc_dropout`` > 0 keeps dropout active and averages that many passes.
    """

    def __init__(self, model: GroupPooled, device: torch.device, *, amp: bool = True,
                 mc_dropout: int = 0):
        self.model = model.placed(device).eval()
        self.device = device
        configure_precision(device, amp)
        self.dtype = amp_dtype(device, amp)
        self.mc_dropout = mc_dropout
        if mc_dropout:
            for module in self.model.modules():
                if isinstance(module, (torch.nn.Dropout, torch.nn.Dropout2d)):
                    module.train()

    @property
    def card(self):
        return self.model.card

    @property
    def identity(self) -> dict:
        """Where and how the numbers are computed, part of a resumable table's identity: a
        job requeued from a GPU onto a CPU (or from bf16 to float32) must not mix rows
        computed both ways in one table."""
        return {"device": self.device.type, "precision": precision_of(self.device, self.dtype)}

    def beliefs(self, images: np.ndarray | torch.Tensor, *, spread: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated beliefs ``softmax(pooled logits / temperature)`` and the spread.

        The beliefs are the validated model's whatever is asked. The spread is the standard
        deviation of the winning class's belief across an ensemble's members, the group's
        copies (``spread``) and Monte-Carlo dropout samples: how much they disagree; NaN
        when there is none of them.
        """
        x = as_batch(images, self.device)
        temperature = float(self.card.temperature)
        pooled, copies = [], []
        for _ in range(max(1, self.mc_dropout)):
            outputs = forward(self.model, x, self.dtype, per_element=spread, per_member=True)
            logits = outputs.mean(0)
            copies.append(torch.softmax(outputs / temperature, dim=-1))
            pooled.append(torch.softmax(logits / temperature, dim=-1))
        mean = torch.stack(pooled).mean(0)
        samples = torch.cat(copies)
        if samples.shape[0] > 1:
            winner = mean.argmax(1)
            deviation = samples[:, torch.arange(len(winner)), winner].std(0)
        else:
            deviation = torch.full((mean.shape[0],), float("nan"))
        return mean.cpu().numpy(), deviation.cpu().numpy()

    def embeddings(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Feature vectors ``(n, features)`` pooled over the group (:meth:`GroupPooled.embed`)."""
        with torch.inference_mode(), autocast(self.device, self.dtype):
            features = self.model.embed(as_batch(images, self.device))
        return features.float().cpu().numpy()

    def pixel_probabilities(self, images: np.ndarray) -> np.ndarray:
        """Per-pixel class beliefs ``(n, classes, y, x)`` of a segmentation model."""
        return torch.softmax(forward(self.model, as_batch(images, self.device), self.dtype),
                             dim=1).cpu().numpy()


def dataset_logits(model: GroupPooled, data: PreparedDataset, device: torch.device,
                   dtype: torch.dtype | None = None, batch_size: int = 256
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pooled logits and label indices of every sample of a prepared split (the logits stay
    on the device until the split is done)."""
    model.eval()
    outputs, labels = [], []
    for start in range(0, len(data), batch_size):
        images, y = data.batch(np.arange(start, min(start + batch_size, len(data))))
        outputs.append(forward(model, as_batch(images, device), dtype))
        labels.append(y)
    if not outputs:
        return np.zeros((0, model.net.num_classes), np.float32), np.zeros(0, np.int64)
    return torch.cat(outputs).cpu().numpy(), np.concatenate(labels)


#: Samples that measure batch-norm statistics: enough for stable means and variances, a
#: small part of an epoch's cost on a large set.
BATCH_NORM_SAMPLES = 2048


@torch.no_grad()
def refresh_batch_norm(net: torch.nn.Module, data: PreparedDataset, device: torch.device,
                       dtype: torch.dtype | None = None, batch_size: int = 256,
                       limit: int = BATCH_NORM_SAMPLES,
                       transform: Callable[[torch.Tensor], torch.Tensor] | None = None
                       ) -> None:
    """Measure ``net``'s batch-norm statistics afresh on (evenly spaced samples of) ``data``,
    as the model will see inputs: unaugmented (or through ``transform``), every other layer
    in evaluation mode (no dropout, no random numbers drawn but the transform's own).

    Why: the running averages that training keeps mix statistics of weights that have since
    moved and of augmented inputs (interpolated rotations), and a model validated with them
    swung between chance and its real accuracy from one epoch to the next (issue 24)."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or len(data) == 0:
        return
    was_training = net.training
    net.eval()
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches below
        norm.train()
    chosen = np.unique(np.linspace(0, len(data) - 1, min(limit, len(data))).astype(np.int64))
    try:
        for part in np.array_split(chosen, -(-len(chosen) // batch_size)):  # equal-sized
            images, _ = data.batch(part)
            x = as_batch(images, device)
            with autocast(device, dtype):
                net(transform(x) if transform else x)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        net.train(was_training)


def dataset_embeddings(model: GroupPooled, data: PreparedDataset, device: torch.device,
                       dtype: torch.dtype | None = None, batch_size: int = 256) -> np.ndarray:
    """Embeddings (:meth:`GroupPooled.embed`) of every sample of a prepared split."""
    model.eval()
    outputs = []
    for start in range(0, len(data), batch_size):
        images, _ = data.batch(np.arange(start, min(start + batch_size, len(data))))
        with torch.inference_mode(), autocast(device, dtype):
            outputs.append(model.embed(as_batch(images, device)).float())
    return torch.cat(outputs).cpu().numpy() if outputs else np.zeros((0, 0), np.float32)


def pixel_confusion(model: GroupPooled, data: PreparedDataset, device: torch.device,
                    dtype: torch.dtype | None = None, batch_size: int = 64
                    ) -> tuple[np.ndarray, float]:
    """Pixel confusion matrix and mean loss of a segmentation model over a prepared split
    with masks (pixel classes as :func:`galcnn.data.masks.segmentation_classes`), counted on
    the device: only the totals come back."""
    model.eval()
    n_classes = model.net.num_classes
    cm = torch.zeros(n_classes * n_classes, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float64 if device.type != "mps" else torch.float32,
                           device=device)
    seen = 0
    for start in range(0, len(data), batch_size):
        indices = np.arange(start, min(start + batch_size, len(data)))
        images, _ = data.batch(indices)
        target = as_batch(data.pixel_targets(indices), device, dtype=torch.long)
        logits = forward(model, as_batch(images, device), dtype)
        loss_sum += segmentation_loss(logits, target).to(loss_sum.dtype) * len(target)
        seen += len(target)
        pairs = (target * n_classes + logits.argmax(1)).flatten()
        cm.scatter_add_(0, pairs, torch.ones_like(pairs))
    return cm.view(n_classes, n_classes).cpu().numpy(), float(loss_sum) / max(seen, 1)
