"""Fine-tuning from another checkpoint."""

from __future__ import annotations

import os

import torch

from galcnn.checkpoint import load_checkpoint
from galcnn.data.recipe import Preprocess
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.train import train

from helpers import SAMPLE_DATA, tiny


def test_fine_tuning_with_other_classes_gets_a_new_head(simulated, tmp_path):
    run = str(tmp_path / "run")
    train(simulated, run, tiny(epochs=1))
    two = str(tmp_path / "two")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], two, classes=["elliptical", "edge_on"],
            options=PrepareOptions(Preprocess(size=(32, 32))), workers=1)
    tuned = str(tmp_path / "tuned")
    train(two, tuned, tiny(epochs=1, init_from=run, freeze=2, lr=1e-9,
                                   warmup_epochs=0))
    before = load_checkpoint(run)["model"]
    after = load_checkpoint(tuned)
    assert after["card"].classes == ["elliptical", "edge_on"]
    assert after["model"]["head.2.weight"].shape[0] == 2
    # frozen stem copied unchanged; BN running statistics are buffers, so compare weights
    assert torch.equal(before["features.0.0.weight"], after["model"]["features.0.0.weight"])
