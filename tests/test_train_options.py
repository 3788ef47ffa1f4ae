"""TrainConfig's GPU-path options on the CPU: channels-last, bf16 autocast and torch.compile change kernels
and layouts, not what is computed (bf16: only rounding)."""

from __future__ import annotations

import copy

import pytest
import torch

from ensplit.data.dataset import Dataset
from ensplit.ensembles import deep_ensemble
from ensplit.errors import EnsplitError
from ensplit.layers.member import MemberConv, is_channels_last
from ensplit.train import TrainConfig, predict_log_probs, train

SEEDS = [3, 4]
TOL64 = 1e-10  # float64: NHWC and NCHW kernels differ only in summation order


def tiny_images(n_train: int = 48, n_test: int = 16, seed: int = 0) -> Dataset:
    """Random uint8 images `[N, 3, 8, 8]` whose class is the brightest channel (learnable, 3 classes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_train + n_test, 3, 8, 8), generator=g, dtype=torch.uint8)
    y = x.double().mean(dim=(2, 3)).argmax(1)
    return Dataset("tiny-images", x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=3, kind="image",
                   mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def tiny_vectors(n_train: int = 256, n_test: int = 64, features: int = 40, seed: int = 0) -> Dataset:
    """Gaussian blobs in `features` dims, 4 classes: an MLP or 1-d CNN learns them in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    centres = 1.5 * torch.randn(4, features, generator=g)
    y = torch.randint(0, 4, (n_train + n_test,), generator=g)
    x = centres[y] + torch.randn(n_train + n_test, features, generator=g)
    return Dataset("tiny-vectors", x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=4)


def _resnet(strategy: str) -> torch.nn.Module:
    return deep_ensemble("resnet", SEEDS, conv_strategy=strategy, width=2, depth=8, in_shape=(3, 8, 8),
                         num_classes=3, shortcut="B")


# --- channels_last --------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["grouped", "loop", "auto"])
def test_channels_last_gives_the_same_outputs_and_gradients(float64_default, monkeypatch, strategy):
    torch.manual_seed(0)
    nchw = _resnet(strategy)
    nhwc = copy.deepcopy(nchw).to(memory_format=torch.channels_last)
    convs = [m for m in nhwc.modules() if isinstance(m, MemberConv)]
    assert convs and all(is_channels_last(m.weight) for m in convs)
    assert not any(is_channels_last(m.weight) for m in nchw.modules() if isinstance(m, MemberConv))
    layouts: list[tuple[int, bool]] = []  # (groups, input channels-last?) of every conv2d call
    conv2d = torch.nn.functional.conv2d

    def recording(x, weight, *args):
        layouts.append((args[-1], x.is_contiguous(memory_format=torch.channels_last)))
        return conv2d(x, weight, *args)

    monkeypatch.setattr(torch.nn.functional, "conv2d", recording)
    x = torch.randn(5, 3, 8, 8)
    out_nchw = nchw(x)
    plain_layouts, layouts[:] = list(layouts), []
    out_nhwc = nhwc(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out_nhwc, out_nchw, atol=TOL64, rtol=0)
    # the grouped conv (groups = members) is fed NHWC-packed input exactly when its weight is channels-last
    assert len(layouts) == len(plain_layouts) > 0
    assert not any(cl for groups, cl in plain_layouts if groups == len(SEEDS))
    assert all(cl for groups, cl in layouts if groups == len(SEEDS))
    if strategy == "grouped":
        assert all(groups == len(SEEDS) for groups, _ in layouts)
    weights = torch.randn_like(out_nchw)
    (out_nchw * weights).sum().backward()
    (out_nhwc * weights).sum().backward()
    for (name, p), q in zip(nchw.named_parameters(), nhwc.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=TOL64, rtol=0, msg=name)


def test_training_with_channels_last_matches_and_keeps_the_layout(float64_default):
    data = tiny_images()
    results = {}
    for channels_last in (False, True):
        model = _resnet("grouped")
        config = TrainConfig(epochs=2, batch_size=16, lr=0.05, channels_last=channels_last)
        result = train(model, data, config, SEEDS, progress=False)
        convs = [m for m in model.modules() if isinstance(m, MemberConv)]
        assert all(is_channels_last(m.weight) == channels_last for m in convs)
        results[channels_last] = (result.train_loss, predict_log_probs(model, data.x_test, data))
    assert results[True][1].dtype == torch.float64
    torch.testing.assert_close(results[True][1], results[False][1], atol=TOL64, rtol=0)
    for a, b in zip(results[True][0], results[False][0], strict=True):
        assert a == pytest.approx(b, abs=TOL64, rel=0)


def test_channels_last_leaves_1d_models_alone():
    data = tiny_vectors(n_train=64, n_test=16)
    predictions = []
    for channels_last in (False, True):
        model = deep_ensemble("cnn1d", SEEDS, width=4, num_classes=4)
        train(model, data, TrainConfig(epochs=1, batch_size=32, channels_last=channels_last), SEEDS, progress=False)
        predictions.append(predict_log_probs(model, data.x_test))
    assert torch.equal(predictions[0], predictions[1])
    conv = MemberConv(2, 1, 3, 4, 3, padding=1)
    x = torch.randn(2, 5, 3, 11)
    before = conv(x)
    conv.to(memory_format=torch.channels_last)  # a 3-d weight has no channels-last layout: unchanged
    assert not is_channels_last(conv.weight) and torch.equal(conv(x), before)


# --- precision ------------------------------------------------------------------------------------------

BF16_PROB_TOL = 0.02  # probabilities; measured max |p_bf16 - p_fp32| = 0.0033 after 5 epochs (2-core CPU)


def _train_mlp(precision: str, data: Dataset, epochs: int = 5):
    model = deep_ensemble("mlp", SEEDS, width=16, num_classes=4)
    result = train(model, data, TrainConfig(epochs=epochs, batch_size=64, lr=0.05, precision=precision), SEEDS,
                   progress=False)
    return model, result


def test_bf16_training_learns_and_stays_close_to_fp32():
    data = tiny_vectors()
    fp32, fp32_result = _train_mlp("fp32", data)
    bf16, bf16_result = _train_mlp("bf16", data)
    assert all(p.dtype == torch.float32 for p in bf16.parameters())  # autocast leaves the weights alone
    losses = [sum(epoch) / len(epoch) for epoch in bf16_result.train_loss]
    assert losses[-1] < 0.5 * losses[0]
    for a, b in zip(bf16_result.train_loss, fp32_result.train_loss, strict=True):
        assert a == pytest.approx(b, abs=1e-2)
    lp32 = predict_log_probs(fp32, data.x_test, precision="fp32")
    lp16 = predict_log_probs(bf16, data.x_test, precision="bf16")
    assert lp16.dtype == torch.float32 and lp16.shape == lp32.shape == (len(SEEDS), 64, 4)
    torch.testing.assert_close(lp16.exp().sum(-1), torch.ones(len(SEEDS), 64))  # normalised in fp32
    difference = (lp16.exp() - lp32.exp()).abs().max().item()
    assert 1e-5 < difference < BF16_PROB_TOL  # bf16 really ran, and changed little
    same_model = (predict_log_probs(bf16, data.x_test, precision="fp32") - lp16).abs().max().item()
    assert same_model > 1e-5  # evaluation follows the precision it is given


def test_bf16_keeps_float64_predictions_float64(float64_default):
    model = deep_ensemble("mlp", SEEDS, width=8, num_classes=4)
    assert predict_log_probs(model, torch.randn(7, 40), precision="bf16").dtype == torch.float64


@pytest.mark.parametrize("value", ["fp16", "BF16", "bfloat16", ""])
def test_an_unknown_precision_is_a_one_line_error(value):
    with pytest.raises(EnsplitError, match="precision = .*: must be 'fp32' or 'bf16'") as error:
        TrainConfig(precision=value)
    assert "\n" not in str(error.value)
    with pytest.raises(EnsplitError, match="precision must be one of"):
        predict_log_probs(deep_ensemble("mlp", SEEDS, width=4), torch.randn(3, 40), precision=value)


# --- torch.compile --------------------------------------------------------------------------------------

COMPILE_TOL = 1e-5  # float32: inductor's fused kernels sum in another order than eager


def _compile_unavailable() -> str | None:
    """Why torch.compile cannot run here (no working C++ toolchain, unsupported platform), or None."""
    try:
        compiled = torch.compile(lambda x: torch.sin(x) * 2 + 1)
        x = torch.linspace(0, 1, 8)
        if not torch.allclose(compiled(x), torch.sin(x) * 2 + 1):
            return "torch.compile runs but computes a trivial function wrongly"
    except Exception as error:  # any failure of the probe means compilation is unavailable
        return f"torch.compile unavailable: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


def test_compiled_training_matches_eager():
    reason = _compile_unavailable()
    if reason:
        pytest.skip(reason)
    from torch._dynamo.utils import counters

    data = tiny_vectors(n_train=256, n_test=64)
    runs = {}
    for compiled in (False, True):
        model = deep_ensemble("mlp", SEEDS, width=16, num_classes=4)
        config = TrainConfig(epochs=2, batch_size=64, lr=0.05, compile=compiled)
        graphs = counters["stats"]["unique_graphs"]
        result = train(model, data, config, SEEDS, progress=False)
        assert (counters["stats"]["unique_graphs"] > graphs) == compiled  # dynamo captured the forward
        assert type(model).__name__ == "MemberBatchedEnsemble"  # the caller's model is never swapped out
        runs[compiled] = (result.train_loss, predict_log_probs(model, data.x_test), model.state_dict())
    (eager_loss, eager_lp, eager_state), (comp_loss, comp_lp, comp_state) = runs[False], runs[True]
    for a, b in zip(comp_loss, eager_loss, strict=True):
        assert a == pytest.approx(b, abs=COMPILE_TOL, rel=0)
    torch.testing.assert_close(comp_lp, eager_lp, atol=COMPILE_TOL, rtol=0)
    assert comp_state.keys() == eager_state.keys()  # no "_orig_mod." prefixes from the compiled wrapper
    for name, value in eager_state.items():
        torch.testing.assert_close(comp_state[name], value, atol=COMPILE_TOL, rtol=0, msg=name)
    assert not torch.equal(comp_lp, predict_log_probs(deep_ensemble("mlp", SEEDS, width=16, num_classes=4),
                                                      data.x_test))  # training moved the weights
