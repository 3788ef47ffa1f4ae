"""Weight decay by parameter group: the mixture recipe (seed 003 appendix A) keeps α and norms out of weight
decay for SGD, Adam and AdamW; every other model keeps one group. One float64 step against a written-out
update checks that the exempt tensors are really not decayed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ensplit.train.loop as loop
from ensplit.data.dataset import Dataset
from ensplit.ensembles.methods import build_method
from ensplit.models import create
from ensplit.train.config import TrainConfig
from ensplit.train.optim import make_optimizer

OPTIMIZERS = ["sgd", "adam", "adamw"]
# A mixture of a 2-hidden-layer MLP with norms, one flat bank: body = linear 0, norm 1, relu, linear 3, norm 4, relu.
MLP = {"depth": 2, "num_classes": 3, "family_options": {"norm": True}, "grouping": "single", "seed": 0}
PREFIX = "network.network."
ALPHAS = {PREFIX + n for n in ("body.0.alpha", "body.3.alpha", "head.alpha")}
NORMS = {PREFIX + n for n in ("body.1.weight", "body.1.bias", "body.4.weight", "body.4.bias")}


def _mixture(**options) -> nn.Module:
    return build_method("mixture", "mlp", 3, 8, **MLP, **options)


def _groups_by_name(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[tuple[float, set[str]]]:
    name_of = {id(p): n for n, p in model.named_parameters()}
    return [(g["weight_decay"], {name_of[id(p)] for p in g["params"]}) for g in optimizer.param_groups]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_mixture_alpha_and_norms_sit_in_the_zero_decay_group(optimizer: str) -> None:
    model = _mixture()
    config = TrainConfig(optimizer=optimizer, weight_decay=1e-3)
    groups = _groups_by_name(model, make_optimizer(model, config))
    everything = {n for n, _ in model.named_parameters()}
    assert groups == [(1e-3, everything - ALPHAS - NORMS), (0.0, ALPHAS | NORMS)]
    assert PREFIX + "body.0.bank.bank" in groups[0][1]  # the templates and the biases are decayed


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("options,exempt", [({"weight_decay_alpha": True}, NORMS),
                                            ({"weight_decay_norms": True}, ALPHAS),
                                            ({"weight_decay_alpha": True, "weight_decay_norms": True}, set())])
def test_mixture_options_put_alpha_or_norms_back_under_decay(optimizer: str, options: dict, exempt: set) -> None:
    model = _mixture(**options)
    groups = _groups_by_name(model, make_optimizer(model, TrainConfig(optimizer=optimizer, weight_decay=1e-3)))
    everything = {n for n, _ in model.named_parameters()}
    assert groups == ([(1e-3, everything - exempt), (0.0, exempt)] if exempt else [(1e-3, everything)])


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_other_models_keep_one_decayed_group(optimizer: str) -> None:
    config = TrainConfig(optimizer=optimizer, weight_decay=1e-3)
    plain = create("mlp", 8, 2, num_classes=3, norm=True)
    models = [plain, *(build_method(m, "mlp", 3, 8, **{k: v for k, v in MLP.items() if k != "grouping"})
                       for m in ("single", "deep", "batchensemble", "mimo", "multihead"))]
    for model in models:
        opt = make_optimizer(model, config)
        assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 1e-3
        assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in model.parameters()]
    deep = build_method("deep", "mlp", 3, 8, weight_decay_norms=False, **{k: v for k, v in MLP.items()
                                                                            if k != "grouping"})
    norms = {PREFIX + n for n in ("body.1.weight", "body.1.bias", "body.4.weight", "body.4.bias")}
    assert _groups_by_name(deep, make_optimizer(deep, config))[1] == (0.0, norms)  # opt-in only


def _written_out_step(p: torch.Tensor, g: torch.Tensor, wd: float, config: TrainConfig) -> torch.Tensor:
    """The first step of each optimiser from zero state, by hand (torch's documented update rules)."""
    lr = config.lr
    if config.optimizer == "sgd":
        d = g + wd * p  # L2 in the gradient; the momentum buffer starts as d
        return p - lr * (d + config.momentum * d if config.nesterov else d)
    b1, b2, eps = 0.9, 0.999, 1e-8
    if config.optimizer == "adamw":
        p, d = p * (1 - lr * wd), g  # decoupled decay
    else:
        d = g + wd * p
    m_hat, v_hat = (1 - b1) * d / (1 - b1), (1 - b2) * d * d / (1 - b2)
    return p - lr * m_hat / (v_hat.sqrt() + eps)


@pytest.mark.usefixtures("float64_default")
@pytest.mark.parametrize("optimizer,nesterov", [("sgd", False), ("sgd", True), ("adam", False), ("adamw", False)])
def test_one_step_decays_everything_but_alpha_and_norms(optimizer: str, nesterov: bool) -> None:
    model = _mixture()
    config = TrainConfig(optimizer=optimizer, lr=0.1, weight_decay=0.2, nesterov=nesterov)
    generator = torch.Generator().manual_seed(0)
    before, grads = {}, {}
    for name, p in model.named_parameters():
        # small gradients, so that decay changes the direction of Adam's first (sign-like) step too
        p.grad = 0.01 * torch.randn(p.shape, generator=generator)
        before[name], grads[name] = p.detach().clone(), p.grad.clone()
    make_optimizer(model, config).step()
    for name, p in model.named_parameters():
        exempt = name in ALPHAS or name in NORMS
        expected = _written_out_step(before[name], grads[name], 0.0 if exempt else 0.2, config)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-12)
        if exempt and before[name].abs().sum() > 0:  # the test can tell: decay would have moved it elsewhere
            assert not torch.allclose(p.detach(), _written_out_step(before[name], grads[name], 0.2, config))


def test_training_builds_the_optimizer_from_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[tuple[float, set[str]]]] = []
    model = _mixture()

    def recording(parameters, config):
        optimizer = make_optimizer(parameters, config)
        seen.append(_groups_by_name(model, optimizer))
        return optimizer

    monkeypatch.setattr(loop, "make_optimizer", recording)
    x, y = torch.randn(16, 40), torch.randint(0, 3, (16,))
    loop.train(model, Dataset("tiny", x, y, x, y, num_classes=3), TrainConfig(epochs=1, batch_size=16), [0, 1, 2],
               progress=False)
    assert seen and seen[0][1] == (0.0, ALPHAS | NORMS)
