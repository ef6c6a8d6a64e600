"""The input pipeline: sources in input order, a usable batch handed out before a later
problem, and reading overrides applied to a card's recipe in one place."""

from __future__ import annotations

import numpy as np
import torch

from galcnn.data.inputs import collect_sources
from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch
from galcnn.runner.pipeline import Batch, InputPipeline, Problem, ReadingOverrides
from galcnn.stages.evaluate import EvaluateOptions
from galcnn.stages.explain import ExplainOptions
from galcnn.stages.predict import PredictOptions
from helpers import write_fits


def test_batches_and_problems_come_in_input_order(tmp_path):
    rng = np.random.default_rng(0)
    names = ["a", "b", "c", "d", "e"]
    for name in names:
        data = rng.normal(size=(24, 24)).astype(np.float32)
        if name == "c":
            data[:] = np.nan  # no usable pixel: a problem between two batches
        write_fits(tmp_path / f"{name}.fits", data)
    sources, _, _ = collect_sources([str(tmp_path / f"{n}.fits") for n in names])
    recipe = Preprocess(size=(16, 16), stretch=Stretch("asinh"))
    pipeline = InputPipeline(recipe, torch.device("cpu"), 2, workers=1)
    events = list(pipeline.events(sources))
    kinds = [(type(e).__name__, [s.id for s, _ in e.items] if isinstance(e, Batch)
              else e.source.id) for e in events]
    assert kinds == [("Batch", ["a", "b"]), ("Problem", "c"), ("Batch", ["d", "e"])]
    assert isinstance(events[1], Problem) and events[1].sample.problem == "every pixel is NaN, inf or BLANK"
    (positions, x), = events[0].groups
    assert positions == [0, 1] and tuple(x.shape) == (2, 1, 16, 16)
    assert not pipeline.on_device  # a CPU: the reading workers prepare the inputs


def test_reading_overrides_replace_only_how_files_are_read():
    card_recipe = Preprocess(size=(32, 32), hdu=1, band_pattern=None)
    read = ReadingOverrides(hdu="SCI", bands=["g", "r"]).recipe(card_recipe)
    assert (read.hdu, read.bands, read.size, read.stretch) == \
        ("SCI", ("g", "r"), (32, 32), card_recipe.stretch)
    assert ReadingOverrides().recipe(card_recipe) == card_recipe
    # every command that reads inputs takes them, by keyword, after its own fields
    assert ExplainOptions("spiral").target == "spiral"
    assert PredictOptions(8).batch_size == 8
    assert EvaluateOptions("val").split == "val"
    for options in (ExplainOptions(hdu=2), PredictOptions(hdu=2), EvaluateOptions(hdu=2)):
        assert isinstance(options, ReadingOverrides) and options.hdu == 2
