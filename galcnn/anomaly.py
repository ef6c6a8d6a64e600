"""Anomaly scores: how far a cutout's embedding lies from the training set's.

The score of a vector is its mean cosine distance to its ``k`` nearest training embeddings
(:meth:`galcnn.models.GroupPooled.embed`); a cutout unlike anything the model was trained on
(an artefact, a satellite trail, a rare object) lies far from all of them. Training keeps a
reference sample of the training embeddings in the checkpoint and, in the card, the scores
of the reference itself (each against the others) as percentiles, so that a score reads as
"higher than P % of the training cutouts".
"""

from __future__ import annotations

import numpy as np

__all__ = ["NEIGHBOURS", "MAX_REFERENCE", "knn_scores", "reference_of", "percentile_of"]

NEIGHBOURS = 10
"""k of the k nearest training embeddings."""
MAX_REFERENCE = 5000
"""Training embeddings kept (a random sample beyond this): 5000 x 256 floats is 5 MB."""


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def knn_scores(reference: np.ndarray, vectors: np.ndarray, k: int = NEIGHBOURS, *,
               leave_one_out: bool = False, chunk: int = 1024) -> np.ndarray:
    """Mean cosine distance of each of ``vectors`` to its ``k`` nearest ``reference`` rows;
    ``leave_one_out``: ``vectors`` is ``reference`` and a row is not its own neighbour."""
    reference, vectors = _unit(reference), _unit(vectors)
    k = max(1, min(k, len(reference) - (1 if leave_one_out else 0)))
    scores = np.empty(len(vectors), dtype=np.float64)
    for start in range(0, len(vectors), chunk):
        distances = 1.0 - vectors[start:start + chunk] @ reference.T
        if leave_one_out:
            rows = np.arange(distances.shape[0])
            distances[rows, start + rows] = np.inf
        nearest = np.partition(distances, k - 1, axis=1)[:, :k]
        scores[start:start + chunk] = nearest.mean(1)
    return scores


def reference_of(embeddings: np.ndarray, *, seed: int = 0, k: int = NEIGHBOURS,
                 max_rows: int = MAX_REFERENCE) -> tuple[np.ndarray, dict]:
    """The reference sample of training ``embeddings`` and its card entry: ``k``, the metric,
    the sample size and the percentiles 0-100 of the sample's own scores."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if len(embeddings) > max_rows:
        keep = np.random.default_rng(seed).choice(len(embeddings), max_rows, replace=False)
        embeddings = embeddings[np.sort(keep)]
    scores = knn_scores(embeddings, embeddings, k, leave_one_out=True)
    summary = {"k": k, "metric": "cosine", "n_reference": len(embeddings),
               "percentiles": [float(v) for v in np.percentile(scores, np.arange(101))]}
    return embeddings, summary


def percentile_of(scores: np.ndarray, summary: dict) -> np.ndarray:
    """Where each score falls among the training cutouts' scores, 0-100."""
    return np.interp(scores, summary["percentiles"], np.arange(101.0))
