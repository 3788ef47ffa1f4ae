"""SWA: the average equals the mean of the collected weights; batch-norm statistics are recomputed."""

from __future__ import annotations

import torch

from ensplit.analysis.landscape import ensemble_subsets
from ensplit.data import load_dataset
from ensplit.ensembles import build_member
from ensplit.ensembles.states import flatten_state, parameter_names
from ensplit.train.swa import swa_state


def test_swa_average_is_the_mean_of_the_collected_weights():
    models = [build_member("mlp", s, width=8) for s in range(4)]
    names = parameter_names(models[0])
    states = [m.state_dict() for m in models]
    swa = swa_state(models[0], states)
    expected = torch.stack([flatten_state(s, names) for s in states]).mean(0)
    torch.testing.assert_close(flatten_state(swa, names), expected, rtol=0, atol=1e-6)  # float32 running mean


def test_swa_recomputes_batch_norm_statistics_on_the_training_inputs():
    data = load_dataset("mnist1d").subset(train=200, test=50, seed=0)
    models = [build_member("mlp", s, width=8, depth=1, norm=True) for s in range(2)]
    swa = swa_state(models[0], [m.state_dict() for m in models], data)
    names = parameter_names(models[0])
    mean = torch.stack([flatten_state(m.state_dict(), names) for m in models]).mean(0)
    first = models[0].body[0]
    w = mean[: first.weight.numel()].view_as(first.weight).float()
    b = mean[first.weight.numel() : first.weight.numel() + first.bias.numel()].float()
    pre = data.x_train @ w.T + b  # the averaged first layer's outputs: what its norm must have seen
    torch.testing.assert_close(swa["body.1.running_mean"], pre.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(swa["body.1.running_var"], pre.var(0), rtol=1e-4, atol=1e-5)


def test_ensemble_subsets_are_distinct_and_capped():
    assert ensemble_subsets(4, 2) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    picked = ensemble_subsets(10, 3, limit=7)
    assert len(picked) == len(set(picked)) == 7 and all(len(set(p)) == 3 for p in picked)
