"""Class weights and balanced sampling."""

from __future__ import annotations


import numpy as np

from galcnn.stages.train import class_weights_for



def test_class_weights_favour_rare_classes():
    weights = class_weights_for(np.array([900, 100, 25]), "auto").numpy()
    assert weights[0] < weights[1] < weights[2]
    np.testing.assert_allclose(weights[2] / weights[0], 6.0, rtol=1e-6)  # sqrt(900 / 25)
    np.testing.assert_allclose((weights * [900, 100, 25]).sum() / 1025, 1.0, rtol=1e-6)
    assert class_weights_for(np.array([5, 5]), "none") is None
