"""Landscape analyses: similarity matrices against naive loops, trajectories, summaries of sweeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ensplit.analysis.landscape import (
    SamplerSweep,
    accuracy_at_diversity,
    checkpoint_cosine,
    checkpoint_disagreement,
    diversity_at_accuracy,
    ensemble_size_curves,
    independent_points,
    to_final,
    within_across,
)
from ensplit.data import load_dataset
from ensplit.ensembles import build_member, deep_ensemble
from ensplit.store.trajectories import load_trajectories
from ensplit.train import TrainConfig, train
from ensplit.train.trajectories import train_trajectories, trajectory_template


@pytest.fixture(scope="module")
def data():
    return load_dataset("mnist1d").subset(train=200, test=100, seed=0)


def test_cosine_matrix_matches_a_naive_loop_and_skips_norm_buffers():
    models = [build_member("mlp", s, width=6, norm=True) for s in range(4)]
    for m in models:  # buffers that would change the cosine if they were (wrongly) included
        m.body[1].running_mean.fill_(100.0 * torch.rand(()).item())
    matrix = checkpoint_cosine(models[0], [m.state_dict() for m in models])
    vectors = [torch.cat([p.detach().double().reshape(-1) for p in m.parameters()]) for m in models]
    for i in range(4):
        for j in range(4):
            a, b = vectors[i], vectors[j]
            expected = float(sum(a[k] * b[k] for k in range(len(a))) / (a.norm() * b.norm()))
            assert matrix[i, j] == pytest.approx(expected, abs=1e-12)


def test_disagreement_matrix_matches_a_naive_loop():
    log_probs = torch.log_softmax(torch.randn(5, 40, 4, generator=torch.Generator().manual_seed(0),
                                              dtype=torch.float64), -1)
    matrix = checkpoint_disagreement(log_probs)
    labels = log_probs.argmax(-1).tolist()
    for i in range(5):
        for j in range(5):
            expected = sum(labels[i][n] != labels[j][n] for n in range(40)) / 40
            assert matrix[i, j] == pytest.approx(expected, abs=1e-12)


def test_within_across_and_to_final_match_naive_loops():
    rng = np.random.default_rng(0)
    matrix = rng.random((6, 6))
    inits = [0, 0, 0, 1, 1, 1]
    within = [matrix[i, j] for i in range(6) for j in range(6) if i != j and inits[i] == inits[j]]
    across = [matrix[i, j] for i in range(6) for j in range(6) if inits[i] != inits[j]]
    assert within_across(matrix, inits) == pytest.approx((np.mean(within), np.mean(across)))
    np.testing.assert_array_equal(to_final(matrix, inits), [matrix[[0, 1, 2], 2], matrix[[3, 4, 5], 5]])


def test_independent_points_are_ordered_pairs_normalised_by_the_reference_error():
    labels = torch.tensor([0, 1, 2, 0])
    predicted = torch.tensor([[0, 1, 2, 1], [0, 1, 1, 1], [2, 2, 2, 0]])  # accuracies 3/4, 2/4, 2/4
    log_probs = torch.log(torch.nn.functional.one_hot(predicted, 3).double() * 0.98 + 0.01 / 1.0)
    acc, div = independent_points(log_probs, labels)
    assert acc.tolist() == pytest.approx([0.5, 0.5, 0.75, 0.5, 0.75, 0.5])
    # pair (0, 1): 1 of 4 differs, reference error 1/4 -> 1.0; pair (1, 0): same disagreement / (2/4) -> 0.5
    assert div[0] == pytest.approx(1.0) and div[2] == pytest.approx(0.5)


def test_equal_accuracy_and_equal_diversity_comparisons_interpolate_between_scales():
    sweep = SamplerSweep("s", np.array([1.0, 2.0, 3.0]), np.array([[0.8], [0.6], [0.4]]),
                         np.array([[0.1], [0.3], [0.7]]))
    assert diversity_at_accuracy(sweep, 0.5) == (pytest.approx(0.5), True)
    assert diversity_at_accuracy(sweep, 0.9) == (pytest.approx(0.1), False)
    assert accuracy_at_diversity(sweep, 0.5) == (pytest.approx(0.5), True)
    assert accuracy_at_diversity(sweep, 0.2) == (pytest.approx(0.7), True)
    assert accuracy_at_diversity(sweep, 0.9) == (pytest.approx(0.4), False)


def test_ensemble_size_curves_average_probabilities_over_subsets():
    g = torch.Generator().manual_seed(1)
    pool = torch.log_softmax(torch.randn(3, 50, 4, generator=g, dtype=torch.float64), -1)
    labels = torch.randint(0, 4, (50,), generator=g)
    sizes, curves = ensemble_size_curves({"p": pool}, labels)
    assert sizes == [1, 2, 3]
    pairs = [(0, 1), (0, 2), (1, 2)]
    nll_pairs = [float(-torch.log(pool[list(p)].exp().mean(0)[torch.arange(50), labels]).mean()) for p in pairs]
    assert curves["p"]["nll"][1] == pytest.approx(np.mean(nll_pairs), rel=1e-6)
    acc_all = float((pool.exp().mean(0).argmax(-1) == labels).double().mean())
    assert curves["p"]["accuracy"][2] == pytest.approx(acc_all)


def test_trajectories_checkpoint_each_member_as_if_trained_alone(tmp_path, data):
    config = TrainConfig(epochs=3)
    traj = train_trajectories(data, "mlp", 8, [0, 1], config, every=2, tail_epochs=2, out=tmp_path)
    assert traj.epochs == [2, 3, 4, 5] and traj.phases == ["train", "train", "tail", "tail"]
    alone = deep_ensemble("mlp", [1], width=8, in_shape=data.in_shape, num_classes=data.num_classes)
    train(alone, data, config, [1], progress=False)
    for name, value in alone.member_state_dict(0).items():
        torch.testing.assert_close(traj.solutions()[1][name], value)
    loaded = load_trajectories(tmp_path)
    assert (loaded.epochs, loaded.phases, loaded.seeds) == (traj.epochs, traj.phases, traj.seeds)
    for k in range(2):
        for t in range(4):
            for name, value in traj.states[k][t].items():
                assert torch.equal(loaded.states[k][t][name], value)
    assert len(loaded.tail(0)) == 2 and trajectory_template(loaded).state_dict().keys() == traj.states[0][0].keys()


def test_trajectories_carry_the_loops_epoch_seconds_and_each_solutions_train_loss(data):
    """Every epoch of both phases is timed by the loop; the train loss is the solution's, as if trained alone."""
    config = TrainConfig(epochs=3)
    traj = train_trajectories(data, "mlp", 8, [0, 1], config, every=2, tail_epochs=2)
    assert len(traj.seconds_per_epoch) == 3 + 2 and all(s > 0 for s in traj.seconds_per_epoch)
    alone = deep_ensemble("mlp", [1], width=8, in_shape=data.in_shape, num_classes=data.num_classes)
    result = train(alone, data, config, [1], progress=False)
    assert len(traj.train_loss) == 2 and traj.train_loss[1] == pytest.approx(result.train_loss[-1][0], rel=1e-5)


def test_cosine_can_skip_batch_norm_scales_and_shifts():
    models = [build_member("mlp", s, width=6, depth=1, norm=True) for s in range(3)]
    matrix = checkpoint_cosine(models[0], [m.state_dict() for m in models], skip_norm=True)
    vectors = [torch.cat([m.body[0].weight.reshape(-1), m.body[0].bias, m.head.weight.reshape(-1), m.head.bias])
               .detach().double() for m in models]
    expected = float(vectors[0] @ vectors[1] / (vectors[0].norm() * vectors[1].norm()))
    assert matrix[0, 1] == pytest.approx(expected, abs=1e-12)
