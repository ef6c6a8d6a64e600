"""Shared option parsers and option groups."""

from __future__ import annotations

import click
import pytest

from galcnn.cli.options import (ArchitectureChoice, parse_hdu, parse_list, parse_percentiles,
                                parse_size, parse_where, prepare_options_from, recipe_from)
from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch
from galcnn.models import list_models


def test_parsers():
    assert parse_size(None, None, "64") == (64, 64)
    assert parse_size(None, None, "48x64") == (48, 64)
    assert parse_list(None, None, "a, b,,c") == ["a", "b", "c"]
    assert parse_where(None, None, ("confident=1", "kind = FRI")) == {"confident": "1",
                                                                     "kind": "FRI"}
    assert parse_percentiles(None, None, "1,99") == (1.0, 99.0)
    assert parse_hdu(None, None, "SCI") == "SCI" and parse_hdu(None, None, "2") == 2
    assert parse_hdu(None, None, "auto") is None
    for parser, value in ((parse_size, "big"), (parse_size, "2"), (parse_list, ","),
                          (parse_percentiles, "1"), (parse_hdu, "-1")):
        with pytest.raises(click.BadParameter):
            parser(None, None, value)
    with pytest.raises(click.BadParameter, match="COLUMN=VALUE"):
        parse_where(None, None, ("confident",))


def test_architecture_choices_come_from_the_registry():
    assert ArchitectureChoice().choices == ("auto", *list_models())


PARAMS = {"band_pattern": None, "bands": None, "hdu": "SCI", "size": (48, 48), "fit": "resize",
          "stretch": "percentile", "stretch_scope": "band", "softening": 1.0,
          "percentiles": (1.0, 99.0), "zscale_contrast": 0.25, "log_a": 1000.0,
          "peak_softening": 0.05, "floor": 2.0, "fill": "zero",
          "max_bad_fraction": 0.3, "dtype": "float16", "classes": None, "val_fraction": 0.2,
          "test_fraction": 0.1, "masks": "auto", "mask_nsigma": 3.0}


def test_option_values_become_the_recipe():
    recipe = recipe_from(PARAMS)
    assert isinstance(recipe, Preprocess) and recipe.size == (48, 48) and recipe.hdu == "SCI"
    assert (recipe.stretch.name, recipe.stretch.scope, recipe.stretch.lower) == \
        ("percentile", "band", 1.0)
    options = prepare_options_from(PARAMS, augment="rot90", copies=2, seed=4)
    assert options.preprocess == recipe and options.copies == 2 and options.masks == "auto"
    with pytest.raises(click.UsageError, match="percentiles must satisfy"):
        recipe_from({**PARAMS, "percentiles": (99.0, 1.0)})


def test_auto_stretch_is_left_to_the_prepare_stage_with_its_parameters():
    chosen = prepare_options_from({**PARAMS, "stretch": "auto", "masks": "none"})
    assert chosen.preprocess.stretch == Stretch("auto", scope="band", peak_softening=0.05,
                                                floor=2.0, lower=1.0, upper=99.0)
    with pytest.raises(click.UsageError, match="--copies needs an augmentation group"):
        prepare_options_from(PARAMS, copies=2)
