"""Running a model: batched forward passes without autograd, pooled over the model's group.

There is one forward path, :func:`forward`, and it is what training validates with, what
``evaluate`` scores, what ``predict`` writes and what ``segment`` maps: the model pooled over
its symmetry group (:class:`galcnn.models.GroupPooled`). :class:`Predictor` wraps a loaded
model for the commands (device, mixed precision, calibrated beliefs, the spread across group
copies and Monte-Carlo dropout samples); :func:`dataset_logits` and :func:`pixel_confusion`
score a whole prepared split.
"""

from __future__ import annotations

import numpy as np
import torch

from galcnn.data.dataset import PreparedDataset
from galcnn.losses import segmentation_loss
from galcnn.metrics import confusion_matrix
from galcnn.models import GroupPooled
from galcnn.runtime import amp_dtype, autocast

__all__ = ["Predictor", "forward", "as_batch", "dataset_logits", "dataset_embeddings",
           "pixel_confusion"]


def as_batch(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """float32 ``(n, bands, y, x)`` on ``device``, channels-last; pinned for a GPU copy."""
    if isinstance(images, torch.Tensor):
        return images.to(device).float().contiguous(memory_format=torch.channels_last)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if device.type == "cuda":
        x = x.pin_memory()
    return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)


def forward(model: GroupPooled, x: torch.Tensor, dtype: torch.dtype | None = None, *,
            per_element: bool = False) -> torch.Tensor:
    """Pooled logits (or every group copy's, ``per_element``) as float32, no autograd."""
    with torch.inference_mode(), autocast(x.device, dtype):
        logits = model.per_element(x) if per_element else model(x)
    return logits.float()


class Predictor:
    """A loaded model ready to run on batches of preprocessed inputs.

    ``mc_dropout`` > 0 keeps dropout active and averages that many passes.
    """

    def __init__(self, model: GroupPooled, device: torch.device, *, amp: bool = True,
                 mc_dropout: int = 0):
        self.model = model.to(device).to(memory_format=torch.channels_last).eval()
        self.device = device
        self.dtype = amp_dtype(device, amp)
        self.mc_dropout = mc_dropout
        if mc_dropout:
            for module in self.model.modules():
                if isinstance(module, (torch.nn.Dropout, torch.nn.Dropout2d)):
                    module.train()

    @property
    def card(self):
        return self.model.card

    def beliefs(self, images: np.ndarray | torch.Tensor, *, spread: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated beliefs ``softmax(pooled logits / temperature)`` and the spread.

        The beliefs are the validated model's whatever is asked. The spread is the standard
        deviation of the winning class's belief across the group's copies (``spread``) and
        Monte-Carlo dropout samples; NaN when there is neither.
        """
        x = as_batch(images, self.device)
        temperature = float(self.card.temperature)
        pooled, copies = [], []
        for _ in range(max(1, self.mc_dropout)):
            if spread:
                per_element = forward(self.model, x, self.dtype, per_element=True)
                logits = per_element.mean(0)
                copies.append(torch.softmax(per_element / temperature, dim=-1))
            else:
                logits = forward(self.model, x, self.dtype)
            probs = torch.softmax(logits / temperature, dim=-1)
            pooled.append(probs)
            if not spread:
                copies.append(probs[None])
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
    """Pooled logits and label indices of every sample of a prepared split."""
    model.eval()
    outputs, labels = [], []
    for start in range(0, len(data), batch_size):
        images, y = data.batch(np.arange(start, min(start + batch_size, len(data))))
        outputs.append(forward(model, as_batch(images, device), dtype).cpu().numpy())
        labels.append(y)
    if not outputs:
        return np.zeros((0, model.net.num_classes), np.float32), np.zeros(0, np.int64)
    return np.concatenate(outputs), np.concatenate(labels)


def dataset_embeddings(model: GroupPooled, data: PreparedDataset, device: torch.device,
                       dtype: torch.dtype | None = None, batch_size: int = 256) -> np.ndarray:
    """Embeddings (:meth:`GroupPooled.embed`) of every sample of a prepared split."""
    model.eval()
    outputs = []
    for start in range(0, len(data), batch_size):
        images, _ = data.batch(np.arange(start, min(start + batch_size, len(data))))
        with torch.inference_mode(), autocast(device, dtype):
            outputs.append(model.embed(as_batch(images, device)).float().cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)


def pixel_confusion(model: GroupPooled, data: PreparedDataset, device: torch.device,
                    dtype: torch.dtype | None = None, batch_size: int = 64
                    ) -> tuple[np.ndarray, float]:
    """Pixel confusion matrix and mean loss of a segmentation model over a prepared split
    with masks (pixel classes as :func:`galcnn.data.masks.segmentation_classes`)."""
    model.eval()
    n_classes = model.net.num_classes
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    loss_sum, seen = 0.0, 0
    for start in range(0, len(data), batch_size):
        indices = np.arange(start, min(start + batch_size, len(data)))
        images, _ = data.batch(indices)
        target = torch.from_numpy(data.pixel_targets(indices))
        logits = forward(model, as_batch(images, device), dtype).cpu()
        loss_sum += float(segmentation_loss(logits, target)) * len(target)
        seen += len(target)
        cm += confusion_matrix(target.numpy().ravel(), logits.argmax(1).numpy().ravel(),
                               n_classes)
    return cm, loss_sum / max(seen, 1)
