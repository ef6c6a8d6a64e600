"""Reading sources through the recipe in worker processes."""

from __future__ import annotations

import os
import signal

import numpy as np

from galcnn.data.augment import D4, Rotation
from galcnn.data.inputs import Source
from galcnn.data.reader import ReadTask, read_sample, read_samples
from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch

from helpers import dying_read_batch, noise_image, write_fits

RECIPE = Preprocess(bands=("0",), size=(32, 32), stretch=Stretch("asinh"))


def _sources(tmp_path, n=7):
    sources = []
    for i in range(n):
        path = write_fits(tmp_path / f"x{i}.fits", noise_image(seed=i))
        sources.append(Source(f"x{i}", (path,), str(tmp_path)))
    return sources


def test_a_sample_is_the_recipe_applied_with_its_copies(tmp_path):
    source = _sources(tmp_path, 1)[0]
    sample = read_sample(ReadTask(0, source, (D4(1), D4(0, True), Rotation(30.0))), RECIPE)
    assert sample.problem is None and sample.hdu == 0 and np.isnan(sample.ra)
    assert sample.transforms[:3] == ["identity", "rot90", "flip"]
    assert sample.transforms[3].startswith("rotate:30.00")
    expected = RECIPE.apply(noise_image(seed=0)[None])
    np.testing.assert_array_equal(sample.image, expected)
    np.testing.assert_array_equal(sample.images[1], np.rot90(expected, 1, axes=(1, 2)))
    np.testing.assert_array_equal(sample.images[2], expected[:, :, ::-1])
    assert sample.images[3].shape == (1, 32, 32)


def test_problems_are_samples_not_exceptions(tmp_path):
    empty = tmp_path / "empty.fits"
    empty.write_bytes(b"")
    cube = write_fits(tmp_path / "cube.fits", noise_image(bands=2))
    samples = [read_sample(ReadTask(i, Source(str(i), (str(p),), str(tmp_path))), RECIPE)
               for i, p in enumerate((empty, cube))]
    assert samples[0].problem == "empty file (0 bytes)" and samples[0].images == []
    assert samples[1].problem == "has 2 band(s), expected 1" and samples[1].hdu == 0


def test_workers_keep_the_order_and_the_values(tmp_path):
    tasks = [ReadTask(i, s) for i, s in enumerate(_sources(tmp_path))]
    one = list(read_samples(tasks, RECIPE, workers=1))
    two = list(read_samples(tasks, RECIPE, workers=2, chunk=3))
    assert [s.index for s in two] == list(range(7))
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a.image, b.image)


def test_a_reading_process_that_dies_loses_nothing_and_hangs_nothing(tmp_path, monkeypatch,
                                                                    caplog):
    """A worker killed with SIGKILL (what the out-of-memory killer does) left the pool
    waiting forever for its batch: predict stayed at 640/800 rows at 0 % CPU."""
    import galcnn.data.reader as reader

    tasks = [ReadTask(i, s) for i, s in enumerate(_sources(tmp_path, 12))]
    expected = [s.index for s in read_samples(tasks, RECIPE, workers=1)]
    monkeypatch.setattr(reader, "read_batch", dying_read_batch)
    monkeypatch.setenv("DIE_AT", "5")
    monkeypatch.setenv("DIE_ONCE", str(tmp_path / "died"))
    with caplog.at_level("WARNING", logger="galcnn"):
        samples = list(read_samples(tasks, RECIPE, workers=2, batch=2, chunk=2))
    assert [s.index for s in samples] == expected and not any(s.problem for s in samples)
    assert "a reading process died (killed: out of memory, or by a signal)" in caplog.text

    monkeypatch.delenv("DIE_ONCE")  # now it dies every time it reads task 5
    samples = list(read_samples(tasks, RECIPE, workers=2, batch=2, chunk=2))
    assert [s.index for s in samples] == expected
    died = [s.index for s in samples if s.problem == reader.DIED]
    assert died == [4, 5]  # the batch that held task 5, and no other
