"""Fine-tuning: start from another checkpoint's weights, optionally frozen in part."""

from __future__ import annotations

import logging

from galcnn.checkpoint import load_checkpoint
from galcnn.models import Network
from galcnn.stages.train.options import TrainError

__all__ = ["init_from"]

logger = logging.getLogger("galcnn")


def init_from(net: Network, path: str, freeze: int) -> None:
    """Copy every weight whose name and shape match (a new head when the classes differ);
    freeze the first ``freeze`` feature blocks."""
    state = load_checkpoint(path)["model"]
    own = net.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise TrainError(f"--init-from {path}: no layer matches this architecture")
    net.load_state_dict(matched, strict=False)
    skipped = sorted(set(own) - set(matched))
    logger.info("init from %s: %d tensors copied, %d new (%s)", path, len(matched), len(skipped),
                ", ".join(sorted({".".join(k.split(".")[:2]) for k in skipped}))[:120]
                if skipped else "none")
    for block in net.feature_blocks()[:freeze]:
        for parameter in block.parameters():
            parameter.requires_grad_(False)
