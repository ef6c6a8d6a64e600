"""Running a model: the pooled forward pass, calibrated beliefs, spreads, whole splits."""

from __future__ import annotations

import numpy as np
import torch

from galcnn.checkpoint import load_model
from galcnn.data.dataset import PreparedDataset
from galcnn.inference import (Predictor, dataset_logits, forward, pixel_confusion,
                              refresh_batch_norm)
from galcnn.metrics import softmax

CPU = torch.device("cpu")


def test_beliefs_are_the_calibrated_pooled_model(classifier, simulated):
    model = load_model(classifier)
    data = PreparedDataset(simulated, "val")
    images, _ = data.batch(np.arange(6))
    predictor = Predictor(model, CPU)
    beliefs, spread = predictor.beliefs(images)
    pooled = forward(model, torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(beliefs, softmax(pooled, model.card.temperature), atol=1e-6)
    assert np.isnan(spread).all()
    bare = forward(model, torch.from_numpy(images), per_element=True)[0].numpy()
    np.testing.assert_allclose(bare, model.net(torch.from_numpy(images)).detach().numpy(),
                               atol=1e-5)


def test_the_spread_adds_a_column_and_leaves_the_beliefs(classifier, simulated):
    model = load_model(classifier)
    images, _ = PreparedDataset(simulated, "val").batch(np.arange(6))
    predictor = Predictor(model, CPU)
    plain, _ = predictor.beliefs(images)
    beliefs, spread = predictor.beliefs(images, spread=True)
    np.testing.assert_allclose(beliefs, plain, atol=1e-6)
    copies = torch.softmax(forward(model, torch.from_numpy(images), per_element=True)
                           / model.card.temperature, dim=-1).numpy()
    winner = plain.argmax(1)
    np.testing.assert_allclose(spread, copies[:, np.arange(6), winner].std(0, ddof=1),
                               atol=1e-6)


def test_an_ensembles_spread_is_its_members_disagreement(classifier, simulated):
    from galcnn.models import Ensemble

    members = [load_model(classifier) for _ in range(2)]
    with torch.no_grad():  # a second member that differs from the first
        for parameter in members[1].net.parameters():
            parameter.mul_(1.5)
    ensemble = Ensemble(members).eval()
    ensemble.card = members[0].card
    images, _ = PreparedDataset(simulated, "val").batch(np.arange(6))
    beliefs, spread = Predictor(ensemble, CPU).beliefs(images)
    x = torch.from_numpy(images)
    own = np.stack([softmax(forward(m, x).numpy(), ensemble.card.temperature)
                    for m in members])
    mean_logits = np.mean([forward(m, x).numpy() for m in members], axis=0)
    np.testing.assert_allclose(beliefs, softmax(mean_logits, ensemble.card.temperature),
                               atol=1e-6)
    winner = beliefs.argmax(1)
    np.testing.assert_allclose(spread, own[:, np.arange(6), winner].std(0, ddof=1), atol=1e-6)
    assert (spread > 0).all()


def test_mc_dropout_samples_vary_and_average(classifier, simulated):
    images, _ = PreparedDataset(simulated, "val").batch(np.arange(4))
    torch.manual_seed(0)
    beliefs, spread = Predictor(load_model(classifier), CPU, mc_dropout=5).beliefs(images)
    np.testing.assert_allclose(beliefs.sum(1), 1.0, atol=1e-5)
    assert (spread > 0).all()


def test_dataset_logits_follow_the_rows(classifier, simulated):
    model = load_model(classifier)
    data = PreparedDataset(simulated, "val")
    logits, labels = dataset_logits(model, data, CPU, batch_size=7)
    assert logits.shape == (len(data), 4) and labels.tolist() == data.labels.tolist()
    np.testing.assert_allclose(logits[:3], forward(model, torch.from_numpy(
        data.batch([0, 1, 2])[0])).numpy(), atol=1e-5)


def test_pixel_maps_and_confusion(unet, masked):
    model = load_model(unet)
    data = PreparedDataset(masked, "val")
    probs = Predictor(model, CPU).pixel_probabilities(data.batch([0, 1])[0])
    assert probs.shape == (2, 6, 32, 32)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    cm, loss = pixel_confusion(model, data, CPU, batch_size=5)
    assert cm.shape == (6, 6) and cm.sum() == len(data) * 32 * 32 and loss > 0
    np.testing.assert_array_equal(cm.sum(1), np.bincount(
        data.pixel_targets(np.arange(len(data))).ravel(), minlength=6))


def test_batch_norm_statistics_are_measured_afresh_on_the_data(classifier, simulated):
    """Stale running statistics are replaced by the training split's own, measured without
    augmentation, dropout or a random number drawn; the modules' modes are restored."""
    net = load_model(classifier).net
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    first = norms[0]
    with torch.no_grad():
        for norm in norms:
            norm.running_mean.fill_(5.0)
            norm.running_var.fill_(9.0)
    data = PreparedDataset(simulated, "train")
    stem = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    with torch.no_grad():  # what the first batch norm sees: the stem's convolution, averaged
        expected = torch.stack([  # over batches of (nearly) the same size
            stem(torch.from_numpy(data.batch(part)[0])).mean(dim=(0, 2, 3))
            for part in np.array_split(np.arange(len(data)), -(-len(data) // 5))]).mean(0)
    net.train()
    rng = torch.random.get_rng_state()
    refresh_batch_norm(net, data, CPU, batch_size=5)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert net.training and all(m.training for m in net.modules())
    assert first.momentum == 0.1
    np.testing.assert_allclose(first.running_mean.numpy(), expected.numpy(), atol=1e-4)
    assert all((norm.running_var < 9.0).all() for norm in norms)
