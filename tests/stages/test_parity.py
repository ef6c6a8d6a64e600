"""One recipe and one model in every command.

- prepare, predict, evaluate and segment give the network identical input tensors for the
  same file and card, for every stretch and fill;
- default ``predict`` beliefs equal the beliefs ``evaluate`` and the validation step compute
  for the same cutouts, for every symmetry group.

Network inputs are captured with torch's global forward pre-hook on the (real) networks.
"""

from __future__ import annotations

import csv
import json
import os
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from astropy.io import fits
from torch.nn.modules.module import register_module_forward_pre_hook

from galcnn.card import ModelCard
from galcnn.checkpoint import load_model, save_checkpoint
from galcnn.choices import FILL_METHODS, STRETCH_NAMES
from galcnn.data.dataset import PreparedDataset
from galcnn.data.recipe import Preprocess
from galcnn.data.stretch import Stretch
from galcnn.inference import dataset_logits
from galcnn.metrics import confusion_matrix, softmax
from galcnn.models import Network, create_model
from galcnn.stages.evaluate import evaluate
from galcnn.stages.predict import PredictOptions, predict
from galcnn.stages.prepare import PrepareOptions, prepare
from galcnn.stages.segment import SegmentOptions, segment
from galcnn.stages.train import train

from helpers import SAMPLE_DATA, noise_image, tiny, write_fits

CPU = torch.device("cpu")


@contextmanager
def network_inputs():
    """Every tensor a galcnn network is called with, in call order."""
    seen: list[np.ndarray] = []

    def hook(module, args):
        if isinstance(module, Network):
            seen.append(args[0].detach().float().cpu().numpy().copy())

    handle = register_module_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def holed_cutouts(tmp_path_factory):
    """Two-band 32 x 32 cutouts with NaN holes, two per class folder."""
    root = tmp_path_factory.mktemp("holed") / "cutouts"
    for label, offset in (("a", 0), ("b", 10)):
        for i in range(2):
            data = noise_image(seed=offset + i, bands=2) * (1 + i)
            data[0, 2:5, 6:11] = np.nan
            data[1, 20, :] = np.nan
            write_fits(root / label / f"x{i}.fits", data)
    return root


def _checkpoint(path: str, task: str, recipe: Preprocess) -> str:
    torch.manual_seed(0)
    classes = ["a", "b"] if task == "classify" else ["background", "a", "b", "other"]
    name = "cnn" if task == "classify" else "unet"
    args = {"n_bands": 2, "n_classes": len(classes), "width": 8}
    args.update({"size": list(recipe.size)} if task == "classify" else {"depth": 1})
    card = ModelCard(task=task, classes=classes, preprocess=recipe, model=name,
                     model_args=args, cutout_classes=["a", "b"])
    save_checkpoint(path, card, create_model(name, **args).state_dict())
    return path


@pytest.mark.parametrize("stretch", STRETCH_NAMES)
@pytest.mark.parametrize("fill", FILL_METHODS)
def test_every_command_feeds_the_network_the_same_tensors(holed_cutouts, tmp_path, stretch,
                                                          fill):
    recipe = Preprocess(bands=("0", "1"), size=(32, 32), stretch=Stretch(stretch), fill=fill)
    classifier = _checkpoint(str(tmp_path / "classifier.pt"), "classify", recipe)
    unet = _checkpoint(str(tmp_path / "unet.pt"), "segment", recipe)
    prepared = str(tmp_path / "prepared")
    prepare([str(holed_cutouts)], prepared, options=PrepareOptions(recipe, val_fraction=0),
            workers=1)
    data = PreparedDataset(prepared)
    stored = {row["file"]: data.image(i) for i, row in enumerate(data.rows)}
    assert len(stored) == 4

    with network_inputs() as seen:
        predict(classifier, [str(holed_cutouts)], str(tmp_path / "p.csv"))
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    for row, tensor in zip(rows, np.concatenate(seen)):
        np.testing.assert_array_equal(tensor, stored[row["file"]], err_msg=f"predict {row}")

    with network_inputs() as seen:
        result = evaluate(classifier, str(holed_cutouts), workers=1)
    for path, tensor in zip(result.files, np.concatenate(seen)):
        np.testing.assert_array_equal(tensor, stored[path], err_msg=f"evaluate {path}")

    with network_inputs() as seen:
        segment(unet, [str(holed_cutouts / "a" / "x0.fits")], str(tmp_path / "seg"),
                SegmentOptions(tile=32))
    halo = fits.getheader(tmp_path / "seg" / "x0.seg.fits")["HALO"]
    window = seen[0][0]
    np.testing.assert_array_equal(window[:, halo:halo + 32, halo:halo + 32],
                                  stored[str(holed_cutouts / "a" / "x0.fits")])


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory) -> str:
    """Simulated elliptical and clockwise/anticlockwise spirals (a mirror pair) at 32 px."""
    out = str(tmp_path_factory.mktemp("prep") / "spirals")
    prepare([os.path.join(SAMPLE_DATA, "simulated")], out,
            classes=["elliptical", "spiral_cw", "spiral_acw"],
            options=PrepareOptions(Preprocess(size=(32, 32)), val_fraction=0.25), workers=1)
    return out


@pytest.mark.parametrize("symmetry,n_elements", [("none", 1), ("rot90", 4), ("dihedral", 8),
                                                 ("rotate", 4)])
def test_predict_evaluate_and_validation_agree(three_classes, tmp_path, symmetry, n_elements):
    run = str(tmp_path / "run")
    train(three_classes, run, tiny(epochs=1, symmetry=symmetry))
    model = load_model(run)
    card = model.card
    assert card.symmetry == symmetry and len(card.elements) == n_elements
    assert (card.mirror_swap == [0, 2, 1]) == (symmetry == "dihedral")

    val = PreparedDataset(three_classes, "val")
    logits, labels = dataset_logits(model, val, CPU)  # what the validation step computes
    validation = {row["file"]: p for row, p in zip(val.rows, softmax(logits, card.temperature))}
    listing = tmp_path / "val.txt"
    listing.write_text("".join(f"{path}\n" for path in validation))
    predict(run, [f"@{listing}"], str(tmp_path / "p.csv"))
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    predicted = {r["file"]: np.array([float(r[f"p_{c}"]) for c in card.classes]) for r in rows}
    result = evaluate(run, three_classes, split="val")
    evaluated = dict(zip(result.files, result.beliefs))

    assert set(predicted) == set(evaluated) == set(validation)
    for path in validation:
        np.testing.assert_allclose(predicted[path], validation[path], atol=1e-5)
        np.testing.assert_allclose(evaluated[path], validation[path], atol=1e-5)
    # the validation step's confusion matrix (metrics.json) is predict's
    classes = [card.classes.index(r["predicted"]) for r in rows]
    truth = [card.classes.index(os.path.basename(os.path.dirname(r["file"]))) for r in rows]
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    assert confusion_matrix(truth, classes, 3).tolist() == metrics["confusion_matrix"]
    assert result.metrics["confusion_matrix"] == metrics["confusion_matrix"]


@pytest.mark.gpu
def test_predict_on_the_gpu_is_the_cpu_model_in_bf16(classifier, tmp_path):
    """The GPU path (device recipe, bf16 autocast) against the CPU (float32): beliefs close,
    and the device and precision of each table recorded for --resume."""
    rows = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / f"{device}.csv"
        predict(classifier, [os.path.join(SAMPLE_DATA, "simulated")], str(out),
                PredictOptions(device=device))
        rows[device] = {r["file"]: r for r in csv.DictReader(open(out))}
        record = json.load(open(tmp_path / f".{device}.csv.galcnn.json"))
        assert record["device"] == device
    assert set(rows["cpu"]) == set(rows["cuda"]) and len(rows["cpu"]) == 120
    classes = [k for k in next(iter(rows["cpu"].values())) if k.startswith("p_")]
    gaps = [abs(float(rows["cpu"][f][k]) - float(rows["cuda"][f][k]))
            for f in rows["cpu"] for k in classes]
    assert max(gaps) < 0.05 and np.mean(gaps) < 0.01, (max(gaps), np.mean(gaps))
