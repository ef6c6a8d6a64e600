"""The model card: typed, round-tripped through plain values, and read from galcnn 0.1."""

from __future__ import annotations

import pytest

from galcnn.card import CARD_VERSION, ModelCard
from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch

STRETCH = {"name": "asinh", "scope": "image", "softening": 1.0, "lower": 0.5, "upper": 99.5,
           "contrast": 0.25, "log_a": 1000.0}
#: Cards as galcnn 0.1 wrote them (from real checkpoints of that version, trimmed).
CLASSIFIER_0_1 = {
    "task": "classify", "classes": ["elliptical", "spiral_cw", "spiral_acw"],
    "cutout_classes": ["elliptical", "spiral_cw", "spiral_acw"], "bands": ["0"], "n_bands": 1,
    "size": [24, 24], "stretch": STRETCH,
    "prepare": {"size": [24, 24], "fit": "crop", "stretch": STRETCH, "fill": "median",
                "hdu": "auto", "augment": "none", "copies": 0, "val_fraction": 0.15,
                "test_fraction": 0.0, "seed": 0, "max_bad_fraction": 0.5, "dtype": "float32",
                "masks": "none", "mask_nsigma": 2.0},
    "band_pattern": None,
    "model": {"arch": "resnet", "n_bands": 1, "n_classes": 3, "size": [24, 24], "width": 8,
              "dropout": 0.3, "pool_elements": [[k, f] for f in (False, True) for k in range(4)],
              "mirror_swap": [0, 2, 1]},
    "symmetry": "dihedral", "mirror_pairs": [["spiral_cw", "spiral_acw"]], "temperature": 1.3,
    "galcnn_version": "0.1.0", "torch_version": "2.13.0+cpu", "epoch": 1,
    "data": {"n_train": 78}, "training": {"epochs": 1}, "metrics": {"accuracy": 0.67}}
UNET_0_1 = {
    "task": "segment", "classes": ["background", "elliptical", "edge_on", "other"],
    "cutout_classes": ["elliptical", "edge_on"], "bands": ["0"], "n_bands": 1, "size": [16, 16],
    "stretch": STRETCH,
    "prepare": {"size": [16, 16], "fit": "crop", "stretch": STRETCH, "fill": "zero",
                "hdu": "auto", "dtype": "float32", "max_bad_fraction": 0.5,
                "masks": "hdu:MASK"},
    "band_pattern": None,
    "model": {"arch": "unet", "n_bands": 1, "n_classes": 4, "width": 4, "dropout": 0.0,
              "pool_elements": [[0, False], [1, False], [2, False], [3, False]],
              "mirror_swap": None, "depth": 2},
    "symmetry": "rot90", "mirror_pairs": [], "temperature": 1.0, "galcnn_version": "0.1.0"}


def _card(**changes) -> ModelCard:
    values = dict(task="classify", classes=["spiral_cw", "spiral_acw", "elliptical"],
                  preprocess=Preprocess(bands=("g", "r"), size=(32, 32),
                                        stretch=Stretch("zscale"), fill="zero"),
                  model="cnn", model_args={"n_bands": 2, "n_classes": 3, "size": [32, 32]},
                  symmetry="dihedral",
                  elements=[(k, f) for f in (False, True) for k in range(4)],
                  mirror_pairs=[("spiral_cw", "spiral_acw")], temperature=0.8,
                  metrics={"accuracy": 0.9}, training={"epoch": 3})
    return ModelCard(**{**values, **changes})


def test_round_trip_through_plain_values():
    card = _card()
    stored = card.to_dict()
    assert stored["card_version"] == CARD_VERSION
    assert stored["preprocess"]["stretch"]["name"] == "zscale"  # the stretch is stored once
    assert ModelCard.from_dict(stored) == card
    assert card.mirror_swap == [1, 0, 2]
    assert _card(symmetry="rot90", elements=[(k, False) for k in range(4)]).mirror_swap is None


def test_galcnn_0_1_classifier_card_is_converted():
    card = ModelCard.from_dict(CLASSIFIER_0_1)
    assert card.preprocess == Preprocess(bands=("0",), size=(24, 24), stretch=Stretch("asinh"))
    assert (card.model, card.model_args["width"], card.model_args["size"]) == ("resnet", 8,
                                                                               [24, 24])
    assert "pool_elements" not in card.model_args and "arch" not in card.model_args
    assert card.elements[4] == (0, True) and card.mirror_swap == [0, 2, 1]
    assert card.temperature == 1.3 and card.metrics == {"accuracy": 0.67}
    assert card.training["epoch"] == 1 and card.provenance["galcnn_version"] == "0.1.0"


def test_galcnn_0_1_unet_card_is_converted():
    card = ModelCard.from_dict(UNET_0_1)
    assert card.task == "segment" and card.cutout_classes == ["elliptical", "edge_on"]
    assert card.preprocess.fill == "zero"  # the fill rule a U-Net was trained with
    assert card.model == "unet" and card.model_args["depth"] == 2
    assert card.mirror_swap is None and len(card.elements) == 4


def test_cards_that_cannot_describe_a_model_are_refused():
    with pytest.raises(ValueError, match="not among the classes"):
        _card(mirror_pairs=[("spiral_cw", "lenticular")])
    for temperature in (0.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="temperature must be finite and > 0"):
            _card(temperature=temperature)
    with pytest.raises(ValueError, match="upgrade galcnn"):
        ModelCard.from_dict({**_card().to_dict(), "card_version": CARD_VERSION + 1})
    with pytest.raises(KeyError):
        ModelCard.from_dict({"card_version": CARD_VERSION, "task": "classify"})


def test_a_card_holds_the_stretch_its_network_sees_never_auto():
    def card(task):
        return ModelCard(task=task, classes=["a", "b"], preprocess=Preprocess(size=(8, 8)),
                         model="cnn", model_args={})
    assert card("classify").preprocess.stretch == Stretch("peak")
    assert card("segment").preprocess.stretch == Stretch("asinh")
