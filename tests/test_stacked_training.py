"""Stacked runs (`ensplit.train.stacked`) train each seed exactly as its own run would: same predictions as the
plain loop over seeds, same seed, within float32 rounding."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ensplit.data.spec import DataSpec, load_data
from ensplit.ensembles import build_method, method_names
from ensplit.runs.jobs import run_job
from ensplit.runs.plan import TrainJob
from ensplit.train import predict_log_probs, train
from ensplit.train.config import TrainConfig
from ensplit.train.stacked import StackedMethod, stackable

SPEC = DataSpec(dataset="mnist1d", num_samples=400, data_seed=3)
DATA = load_data(SPEC)
CONFIG = TrainConfig(epochs=2, batch_size=32, lr=0.05)
SHARING = [m for m in method_names() if m not in ("single", "deep")]
TOLERANCE = 2e-4  # float32 rounding of batched against separate matmuls, after 2 epochs of SGD


def _model(method: str, seed: int) -> torch.nn.Module:
    options = {"budget": 1500} if method == "mixture" else {}
    return build_method(method, "mlp", 3, 12, None, DATA.in_shape, DATA.num_classes, seed, {}, **options)


def _alone(method: str, seed: int) -> torch.Tensor:
    model = _model(method, seed)
    train(model, DATA, dataclasses.replace(CONFIG, batching=model.batching), [seed + i for i in range(model.members)],
          progress=False, index_sampler=model.index_sampler)
    return predict_log_probs(model, DATA.x_test, DATA)


@pytest.mark.parametrize("method", SHARING)
def test_a_stack_of_runs_predicts_what_each_run_alone_predicts(method: str) -> None:
    seeds = [5, 17, 40]
    models = [_model(method, s) for s in seeds]
    assert all(stackable(m) for m in models)
    stack = StackedMethod(models)
    member_seeds = [s + i for s in seeds for i in range(stack.members)]
    train(stack, DATA, dataclasses.replace(CONFIG, batching=stack.batching), member_seeds, progress=False,
          index_sampler=stack.index_sampler)
    stacked = predict_log_probs(stack, DATA.x_test, DATA)
    alone = torch.cat([_alone(method, s) for s in seeds])
    assert stacked.shape == alone.shape
    torch.testing.assert_close(stacked, alone, atol=TOLERANCE, rtol=0)
    back = stack.unstack(1, _model(method, 999))  # a run's weights come back out into a plain model
    torch.testing.assert_close(predict_log_probs(back, DATA.x_test, DATA), _alone(method, seeds[1]),
                               atol=TOLERANCE, rtol=0)


def test_a_job_of_several_seeds_stores_what_one_job_per_seed_stores() -> None:
    train_items = tuple(sorted(dataclasses.asdict(CONFIG).items()))

    def job(seeds: tuple[int, ...]) -> TrainJob:
        return TrainJob("ladder", "mlp", 12, None, (), SPEC, train_items, seeds, 0, "batchensemble", 3)

    together = run_job(job((7, 8)))
    apart = [run_job(job((s,))) for s in (7, 8)]
    torch.testing.assert_close(torch.as_tensor(together.test_log_probs),
                               torch.cat([torch.as_tensor(a.test_log_probs) for a in apart]), atol=TOLERANCE, rtol=0)
    assert together.failed == apart[0].failed + apart[1].failed
    assert together.params_per_member == apart[0].params_per_member


def test_models_with_buffers_are_not_stacked() -> None:
    bn = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    assert not stackable(bn)
    assert stackable(torch.nn.Linear(3, 3))
