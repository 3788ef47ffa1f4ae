"""Member-batched training equals separately trained members; packing and NaN members change nothing else."""

import math

import pytest
import torch

from ensplit.data import load_mnist1d
from ensplit.ensembles import build_member, deep_ensemble
from ensplit.ensembles.independent import MemberBatchedEnsemble
from ensplit.train import TrainConfig, predict_log_probs, train

SEEDS = [11, 22, 33]
TOL = 1e-10  # float64; differences come only from summation order inside BLAS kernels


@pytest.fixture(scope="module")
def data():
    return load_mnist1d().subset(train=256, test=64, seed=0)


def _as64(data):
    from dataclasses import replace

    return replace(data, x_train=data.x_train.double(), x_test=data.x_test.double())


@pytest.mark.parametrize("family,options", [("mlp", {"dropout": 0.2}), ("cnn1d", {"norm": True}),
                                            ("mlp", {"norm": True})])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_member_batched_equals_separate_training(data, family, options, optimizer):
    torch.set_default_dtype(torch.float64)
    try:
        data64 = _as64(data)
        config = TrainConfig(epochs=2, batch_size=64, optimizer=optimizer, lr=0.01)
        ensemble = deep_ensemble(family, SEEDS, width=8, **options)
        train(ensemble, data64, config, SEEDS, progress=False)
        together = predict_log_probs(ensemble, data64.x_test)
        for i, seed in enumerate(SEEDS):
            alone = deep_ensemble(family, [seed], width=8, **options)
            train(alone, data64, config, [seed], progress=False)
            separate = predict_log_probs(alone, data64.x_test)[0]
            assert torch.allclose(together[i], separate, atol=TOL, rtol=0), (family, i)
    finally:
        torch.set_default_dtype(torch.float32)


def test_packing_does_not_change_members(data):
    """Members 0..3 trained as one batch of 4 or as batches of 1 and 3 give the same predictions."""
    torch.set_default_dtype(torch.float64)
    try:
        data64 = _as64(data)
        seeds = [5, 6, 7, 8]
        config = TrainConfig(epochs=2, batch_size=32)
        all_four = deep_ensemble("mlp", seeds, width=6)
        train(all_four, data64, config, seeds, progress=False)
        packed = predict_log_probs(all_four, data64.x_test)
        first = deep_ensemble("mlp", seeds[:1], width=6)
        rest = deep_ensemble("mlp", seeds[1:], width=6)
        train(first, data64, config, seeds[:1], progress=False)
        train(rest, data64, config, seeds[1:], progress=False)
        split = torch.cat([predict_log_probs(first, data64.x_test), predict_log_probs(rest, data64.x_test)])
        assert torch.allclose(packed, split, atol=TOL, rtol=0)
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_diverging_member_is_recorded_and_isolated(data):
    seeds = [1, 2, 3]
    config = TrainConfig(epochs=2, batch_size=64)
    ensemble = deep_ensemble("mlp", seeds, width=8)
    with torch.no_grad():
        ensemble.network.body[0].weight[1].fill_(float("nan"))
    result = train(ensemble, data, config, seeds, progress=False)
    assert result.failed == [False, True, False]
    assert math.isnan(result.train_loss[-1][1])
    healthy = predict_log_probs(ensemble, data.x_test)[[0, 2]]
    assert torch.isfinite(healthy).all()
    reference = deep_ensemble("mlp", [seeds[0], seeds[2]], width=8)
    train(reference, data, config, [seeds[0], seeds[2]], progress=False)
    assert torch.allclose(healthy, predict_log_probs(reference, data.x_test), atol=1e-5)


def test_member_state_dict_round_trips_into_a_plain_network(data):
    ensemble = deep_ensemble("cnn1d", [3, 4], width=4, norm=True)
    train(ensemble, data, TrainConfig(epochs=1, batch_size=64), [3, 4], progress=False)
    plain = build_member("cnn1d", 4, width=4, norm=True)
    plain.load_state_dict(ensemble.member_state_dict(1))
    plain.eval()
    with torch.no_grad():
        expected = torch.log_softmax(plain(data.x_test), -1)
    assert torch.allclose(predict_log_probs(ensemble, data.x_test)[1], expected, atol=1e-5)
    assert isinstance(ensemble, MemberBatchedEnsemble)


def test_schedules_reach_their_end_values():
    from ensplit.train.optim import make_optimizer, make_schedule

    for schedule, final in [("cosine", 0.0), ("step", 0.01), ("constant", 1.0)]:
        config = TrainConfig(epochs=4, lr=1.0, schedule=schedule, step_milestones=(0.5, 0.75), step_gamma=0.1)
        param = torch.nn.Parameter(torch.zeros(1))
        opt = make_optimizer([param], config)
        sched = make_schedule(opt, config, steps_per_epoch=5)
        for _ in range(20):
            opt.step()
            sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(final, abs=1e-12)
