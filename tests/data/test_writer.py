"""Writing prepared datasets: complete or not at all."""

from __future__ import annotations

import os

import numpy as np
import pytest

from galcnn.data.dataset import PreparedDataset
from galcnn.data.inputs import Source
from galcnn.data.reader import Sample
from galcnn.data.writer import DatasetWriter, ShardWriter


def _sample(value: float, copies: int = 0) -> Sample:
    images = [np.full((1, 8, 8), value + i, np.float32) for i in range(copies + 1)]
    return Sample(0, images=images, transforms=["identity"] + ["rot90"] * copies, hdu=0)


def test_shards_roll_over_at_their_size(tmp_path):
    writer = ShardWriter(str(tmp_path), (1, 8, 8), shard_bytes=3 * 8 * 8 * 4)
    places = [writer.add(np.zeros((1, 8, 8), np.float32)) for _ in range(7)]
    assert places[2] == ("images/shard-00000.npy", 2) and places[3] == ("images/shard-00001.npy", 0)
    assert [s["n"] for s in writer.close()] == [3, 3, 1]
    with pytest.raises(ValueError, match="sample shape"):
        ShardWriter(str(tmp_path), (1, 8, 8)).add(np.zeros((8, 8)))


def test_a_committed_set_reads_back(tmp_path):
    out = str(tmp_path / "set")
    with DatasetWriter(out, (1, 8, 8), "float32") as writer:
        writer.add(Source("a", ("a.fits",), "."), _sample(1.0, copies=1), label="x",
                   label_index=0, split="train")
        writer.add(Source("b", ("b.fits",), "."), _sample(5.0), label="y", label_index=1,
                   split="val")
        assert not os.path.exists(out)
        writer.commit({"classes": ["x", "y"], "preprocess": {"size": [8, 8], "bands": ["0"]}},
                      failures=[("c.fits", "empty file (0 bytes)")],
                      lists={"unlabelled.txt": ["d.fits"], "missing_files.txt": []})
    data = PreparedDataset(out)
    assert [r["transform"] for r in data.rows] == ["identity", "rot90", "identity"]
    assert [float(data.image(i)[0, 0, 0]) for i in range(3)] == [1.0, 2.0, 5.0]
    assert sorted(os.listdir(out)) == ["failed.csv", "images", "manifest.csv", "metadata.json",
                                       "unlabelled.txt"]
    assert os.listdir(tmp_path) == ["set"]


def test_a_failed_run_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(str(tmp_path / "set"), (1, 8, 8), "float32") as writer:
            writer.add(Source("a", ("a.fits",), "."), _sample(1.0))
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
