"""Anomaly scores: distances to the nearest training embeddings, read as percentiles."""

from __future__ import annotations

import numpy as np

from galcnn.anomaly import knn_scores, percentile_of, reference_of


def test_a_vector_far_from_the_reference_scores_high_and_reads_as_a_high_percentile():
    rng = np.random.default_rng(0)
    training = np.abs(rng.normal(size=(400, 16))) + np.eye(16)[0] * 5  # one direction
    reference, summary = reference_of(training, k=5)
    assert summary["n_reference"] == 400 and len(summary["percentiles"]) == 101
    assert summary["percentiles"] == sorted(summary["percentiles"])
    typical = np.abs(rng.normal(size=(50, 16))) + np.eye(16)[0] * 5
    odd = np.abs(rng.normal(size=(50, 16))) + np.eye(16)[3] * 5  # another direction
    scores_typical, scores_odd = knn_scores(reference, typical, 5), knn_scores(reference, odd, 5)
    assert scores_odd.min() > scores_typical.max()
    assert np.median(percentile_of(scores_typical, summary)) < 90
    assert (percentile_of(scores_odd, summary) == 100).all()


def test_leave_one_out_never_counts_a_row_as_its_own_neighbour():
    vectors = np.array([[1.0, 0], [0.0, 1], [1.0, 1]])
    scores = knn_scores(vectors, vectors, 1, leave_one_out=True, chunk=2)
    np.testing.assert_allclose(scores, [1 - 1 / np.sqrt(2)] * 3 + np.array([0, 0, 0]))
    assert (knn_scores(vectors, vectors, 1) < 1e-6).all()


def test_a_large_training_set_is_sampled_to_the_limit():
    reference, summary = reference_of(np.random.default_rng(1).normal(size=(300, 4)),
                                      max_rows=100)
    assert reference.shape == (100, 4) and summary["n_reference"] == 100
