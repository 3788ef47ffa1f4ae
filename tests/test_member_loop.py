"""A member-batched ensemble run member by member (`execution="loop"`: a plain template with each member's views
of the stacked tensors) computes what the member-batched layers compute: outputs, gradients, running statistics
and the state dict, after training steps, in either memory layout; "auto" follows the measured rule."""

import pytest
import torch

from ensplit.ensembles import build_method, deep_ensemble
from ensplit.layers.conv_strategy import choose_execution
from ensplit.train.config import TrainConfig
from ensplit.train.loss import member_losses
from ensplit.train.optim import make_optimizer


def _pair(channels_last: bool, members: int = 3, **kwargs):
    kwargs = {"width": 4, "depth": 8, "in_shape": (3, 12, 12), **kwargs}
    batched = deep_ensemble("resnet", list(range(members)), execution="batched", **kwargs)
    loop = deep_ensemble("resnet", list(range(members)), execution="loop", **kwargs)
    if channels_last:
        batched.to(memory_format=torch.channels_last)
        loop.to(memory_format=torch.channels_last)
    return batched, loop


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shared", [False, True])
def test_member_loop_trains_like_the_member_batched_layers(float64_default, channels_last, shared):
    batched, loop = _pair(channels_last)
    assert batched.resolved_execution(torch.zeros(1)) == "batched"
    assert loop.resolved_execution(torch.zeros(1)) == "loop"
    assert _max_difference(batched.state_dict(), loop.state_dict()) == 0.0
    optimizers = [make_optimizer(list(m.parameters()), TrainConfig(lr=0.05)) for m in (batched, loop)]
    generator = torch.Generator().manual_seed(7)
    for _ in range(3):
        x = torch.randn(3, 5, 3, 12, 12, generator=generator)
        x = x[0] if shared else x
        y = torch.randint(0, 10, (3, 5), generator=generator)
        losses = []
        for model, optimizer in zip((batched, loop), optimizers, strict=True):
            loss = member_losses(model(x), y).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        assert losses[0] == pytest.approx(losses[1], abs=1e-10)
    # parameters, running means and variances, and every norm's num_batches_tracked (3 steps, counted once each)
    assert _max_difference(batched.state_dict(), loop.state_dict()) < 1e-10
    assert int(loop.network.stem_norm.num_batches_tracked) == 3
    for model in (batched, loop):
        model.eval()
    x = torch.randn(4, 3, 12, 12, generator=generator)
    assert torch.allclose(batched(x), loop(x), rtol=0, atol=1e-10)  # eval mode: the running statistics
    for i in range(3):  # what checkpoints and analyses read
        assert _max_difference(batched.member_state_dict(i), loop.member_state_dict(i)) < 1e-10


def test_the_template_is_not_part_of_the_model():
    _, loop = _pair(False)
    names = set(loop.state_dict())
    assert not any("template" in n for n in names)
    assert len(list(loop.parameters())) == len(list(_pair(False)[0].parameters()))


@pytest.mark.parametrize(("device", "dim", "members", "channels", "choice"), [
    ("cpu", 2, 4, 16, "loop"),      # width 16, k = 4: the loop measured 0.84x the member-batched step
    ("cpu", 2, 8, 16, "loop"),
    ("cpu", 2, 8, 8, "loop"),       # width 8, k = 8: 0.94x
    ("cpu", 2, 4, 8, "batched"),    # width 8, k = 4: the loop measured 1.07x
    ("cpu", 2, 8, 4, "batched"),    # width 4: 1.7-1.8x
    ("cpu", 2, 1, 64, "batched"),   # one member: nothing to loop over
    ("cpu", 1, 8, 64, "batched"),   # 1-d convs: the channels-last grouped conv (member_conv_cpu.md)
    ("cpu", 0, 8, 0, "batched"),    # MLPs: batched matrix products
    ("cuda", 2, 8, 64, "batched"),  # unmeasured: one kernel launch per layer
])
def test_auto_follows_the_measured_rule(device, dim, members, channels, choice):
    assert choose_execution(device, dim, members, channels) == choice


@pytest.mark.parametrize(("device", "dim", "members", "channels", "choice"), [
    ("cpu", 2, 4, 4, "loop"),      # scoring: the loop measured faster at every width and member count
    ("cpu", 2, 8, 16, "loop"),
    ("cpu", 2, 1, 16, "batched"),
    ("cpu", 1, 8, 16, "batched"),
    ("cuda", 2, 8, 16, "batched"),
])
def test_auto_in_eval_mode_follows_the_scoring_measurements(device, dim, members, channels, choice):
    assert choose_execution(device, dim, members, channels, training=False) == choice


def test_auto_resolves_per_width_and_members():
    x = torch.zeros(1, 3, 32, 32)
    assert deep_ensemble("resnet", range(4), width=16, depth=8).resolved_execution(x) == "loop"
    assert deep_ensemble("resnet", range(4), width=4, depth=8).resolved_execution(x) == "batched"
    assert deep_ensemble("mlp", range(4), width=16).resolved_execution(torch.zeros(1, 40)) == "batched"
    narrow = deep_ensemble("resnet", range(4), width=4, depth=8)
    assert narrow.eval().resolved_execution(x) == "loop"  # scoring runs member by member at every width
    assert narrow.train().resolved_execution(x) == "batched"  # and training goes back to the batched layers
    # the deep method trains through the same ensemble, so ensplit.train runs the loop where it measured faster
    assert build_method("deep", "resnet", 4, 16, depth=8).network.resolved_execution(x) == "loop"


def test_loop_is_refused_where_the_template_cannot_run_the_members():
    with pytest.raises(ValueError, match="dropout"):  # per-member dropout generators live in the batched layers
        deep_ensemble("mlp", range(2), execution="loop", width=8, dropout=0.1)
    assert deep_ensemble("mlp", range(2), width=8, dropout=0.1).resolved_execution(torch.zeros(1)) == "batched"
    # dropout layers with p = 0 are the identity in both executions
    assert deep_ensemble("mlp", range(2), execution="loop", width=8, dropout=0.0).resolved_execution(
        torch.zeros(1)) == "loop"


def test_member_loop_inside_stacked_seeds_equals_the_separate_models(float64_default):
    """Seeds stacked under vmap (train/stacked.py: models without buffers) run the member loop inside vmap."""
    from ensplit.train.stacked import StackedMethod

    options = {"in_shape": (3, 32, 32), "family_options": {"dropout": 0.0}}
    runs = [build_method("deep", "vgg16", 2, 16, seed=s, **options) for s in (0, 10)]
    assert runs[0].network.resolved_execution(torch.zeros(1)) == "loop"
    x = torch.randn(4, 3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    stacked = StackedMethod(runs)(x)
    separate = torch.cat([run(x[2 * i : 2 * i + 2]) for i, run in enumerate(runs)])
    assert torch.allclose(stacked, separate, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="execution must be one of auto, batched, loop, got 'fast'"):
        deep_ensemble("resnet", range(2), execution="fast", width=4, depth=8)
