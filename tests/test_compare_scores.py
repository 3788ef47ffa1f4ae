"""`ensplit compare`'s member accuracy and corrupted-set ECE against loops written out here (float64)."""

from __future__ import annotations

import pytest
import torch

from ensplit.analysis.ensemble_scores import score
from ensplit.data.corruptions import corrupted_test_sets
from ensplit.data.dataset import Dataset
from ensplit.ensembles.methods import build_method
from ensplit.experiments.compare import corrupted_scores

pytestmark = pytest.mark.usefixtures("float64_default")


def _loop_ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """100 · Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|, bin b = confidences in (b/bins, (b+1)/bins] (0 in the first)."""
    confidence, predicted = probs.max(-1)
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = [n for n in range(len(labels))
                  if low < float(confidence[n]) <= high or (b == 0 and float(confidence[n]) == 0.0)]
        if inside:
            acc = sum(float(predicted[n] == labels[n]) for n in inside) / len(inside)
            conf = sum(float(confidence[n]) for n in inside) / len(inside)
            total += len(inside) / len(labels) * abs(acc - conf)
    return 100.0 * total


def test_member_accuracy_is_the_mean_of_each_members_accuracy() -> None:
    generator = torch.Generator().manual_seed(0)
    log_probs = torch.log_softmax(2 * torch.randn(4, 50, 5, generator=generator), -1)
    labels = torch.randint(0, 5, (50,), generator=generator)
    members = [sum(int(log_probs[i, n].argmax() == labels[n]) for n in range(50)) / 50 for i in range(4)]
    ensemble = (log_probs.exp().mean(0).argmax(-1) == labels).double().mean()
    scores = score(log_probs, labels)
    assert scores["member_accuracy"] == pytest.approx(sum(members) / 4, abs=1e-12)
    assert scores["accuracy"] == pytest.approx(float(ensemble), abs=1e-12)
    assert scores["member_accuracy"] != pytest.approx(scores["accuracy"])  # two different numbers


def test_corrupted_ece_is_the_mean_over_corruption_sets_of_the_ensembles_ece() -> None:
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 40, generator=generator), torch.randint(0, 4, (60,), generator=generator)
    data = Dataset("signals", x, y, x, y, num_classes=4)
    model = build_method("deep", "mlp", 3, 8, num_classes=4, seed=0).eval()
    eces, accuracies = [], []
    for _, _, corrupted in corrupted_test_sets(data):
        with torch.no_grad():
            probs = torch.softmax(model(corrupted), -1).mean(0)  # the ensemble: member probabilities averaged
        eces.append(_loop_ece(probs, y))
        accuracies.append(float((probs.argmax(-1) == y).double().mean()))
    assert len(eces) > 1
    scores = corrupted_scores(model, data)
    assert scores["corrupted_ece"] == pytest.approx(sum(eces) / len(eces), abs=1e-9)
    assert scores["corrupted_accuracy"] == pytest.approx(sum(accuracies) / len(accuracies), abs=1e-12)
