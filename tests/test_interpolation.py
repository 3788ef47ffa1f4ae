"""Paths between solutions: endpoints are the two models; batch-norm statistics recomputed like update_bn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import update_bn

from ensplit.data import load_dataset
from ensplit.ensembles import build_member
from ensplit.train.evaluation import evaluate_states, recompute_bn_statistics
from ensplit.train.interpolation import (
    bezier_interpolation,
    bezier_path,
    linear_interpolation,
    linear_path,
)


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist1d").subset(train=300, test=200, seed=0)


def _direct(model, data):
    model.eval()
    with torch.no_grad():
        lp = torch.log_softmax(model(data.x_test), -1)
    return F.nll_loss(lp, data.y_test).item(), (lp.argmax(-1) == data.y_test).double().mean().item()


def test_path_formulas_hit_the_endpoints():
    a, b, c = (torch.randn(7, dtype=torch.float64) for _ in range(3))
    t = np.array([0.0, 0.5, 1.0])
    for path in (linear_path(a, b, t), bezier_path(a, c, b, t)):
        assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    torch.testing.assert_close(bezier_path(a, c, b, t)[1], 0.25 * a + 0.5 * c + 0.25 * b)


def test_linear_interpolation_endpoints_equal_the_two_models(data):
    a, b = (build_member("mlp", s, width=16) for s in (0, 1))
    curve = linear_interpolation(a, a.state_dict(), b.state_dict(), data, points=5)
    assert not curve.bn_recomputed
    for index, model in ((0, a), (-1, b)):
        loss, acc = _direct(model, data)
        assert curve.test_loss[index] == pytest.approx(loss, rel=1e-5)
        assert curve.test_accuracy[index] == pytest.approx(acc)
    assert curve.t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_bn_statistics_are_recomputed_like_update_bn(data):
    a, b = (build_member("mlp", s, width=16, norm=True) for s in (0, 1))
    curve = linear_interpolation(a, a.state_dict(), b.state_dict(), data, points=3)
    assert curve.bn_recomputed
    for index, model in ((0, a), (-1, b)):
        reference = build_member("mlp", 9, width=16, norm=True)
        reference.load_state_dict(model.state_dict())
        update_bn(torch.utils.data.DataLoader(data.x_train, batch_size=1024), reference)  # torch's own
        loss, acc = _direct(reference, data)
        assert curve.test_loss[index] == pytest.approx(loss, rel=1e-5)
        assert curve.test_accuracy[index] == pytest.approx(acc)
    # chunked recomputation matches update_bn with the same chunks
    mine = build_member("mlp", 0, width=16, norm=True)
    theirs = build_member("mlp", 0, width=16, norm=True)
    recompute_bn_statistics(mine, data.x_train, batch_size=128)
    update_bn(torch.utils.data.DataLoader(data.x_train, batch_size=128), theirs)
    for key, value in theirs.state_dict().items():
        if "running" in key:
            torch.testing.assert_close(mine.state_dict()[key], value)


def test_evaluate_states_stacks_like_separate_models(data):
    models = [build_member("mlp", s, width=8, norm=True) for s in range(3)]
    lp = evaluate_states(models[0], [m.state_dict() for m in models], data.x_test)
    for i, m in enumerate(models):
        m.eval()
        torch.testing.assert_close(lp[i], torch.log_softmax(m(data.x_test), -1))


def test_bezier_fit_lowers_the_loss_in_the_middle(data):
    a, b = (build_member("mlp", s, width=16) for s in (0, 1))
    before = linear_interpolation(a, a.state_dict(), b.state_dict(), data, points=3)
    after = bezier_interpolation(a, a.state_dict(), b.state_dict(), data, points=3, epochs=3, lr=3e-3)
    assert after.train_loss[1] < before.train_loss[1] - 0.01
    assert after.train_loss[0] == pytest.approx(before.train_loss[0])  # endpoints stay put
