"""MIMO: M = 1 is the base network (float64), stem/head found on nested models, training batches."""

from __future__ import annotations

import pytest
import torch

from ensplit.ensembles.independent import build_member
from ensplit.ensembles.methods import build_method, method_param_count
from ensplit.ensembles.mimo import mimo_index_sampler, to_mimo

CASES = [("mlp", {"width": 8}, (40,)), ("cnn1d", {"width": 4, "depth": 2}, (40,)),
         ("resnet", {"width": 2, "depth": 8, "in_shape": (3, 8, 8)}, (3, 8, 8))]


pytestmark = pytest.mark.usefixtures("float64_default")


@pytest.mark.parametrize("family,kw,in_shape", CASES)
def test_one_member_equals_the_base_network(family: str, kw: dict, in_shape: tuple[int, ...]) -> None:
    base = build_member(family, 0, num_classes=3, **kw).eval()
    mimo, replaced = to_mimo(base, 1, in_shape)
    mimo.eval()
    x = torch.randn(5, *in_shape)
    torch.testing.assert_close(mimo(x), base(x).unsqueeze(0))
    assert len(replaced) == 2


def test_stem_and_head_of_a_nested_resnet() -> None:
    base = build_member("resnet", 0, width=2, depth=8, in_shape=(3, 8, 8), num_classes=3, shortcut="B")
    mimo, replaced = to_mimo(base, 3, (3, 8, 8))
    assert replaced == ["stem", "head"]
    assert mimo.network.stem.layer.in_channels == 9 and mimo.network.head.out_features == 9


def test_each_member_reads_its_own_input_and_test_input_is_repeated() -> None:
    model = build_method("mimo", "mlp", 3, 8, num_classes=4).eval()
    x = torch.randn(3, 5, 40)
    y = model(x)
    assert y.shape == (3, 5, 4)
    # member 0's logits change when member 0's input changes, through the stem's first block of channels
    x2 = x.clone()
    x2[1] += 1.0
    assert not torch.allclose(model(x2)[1], y[1])
    shared = torch.randn(5, 40)
    torch.testing.assert_close(model(shared), model(shared.expand(3, 5, 40)))


def test_closed_form_count() -> None:
    m, w = 4, 8  # stem 40·8 weights ×M, head (8·10 + 10) ×M
    single = method_param_count("single", "mlp", 1, w)
    assert method_param_count("mimo", "mlp", m, w) == single + (m - 1) * (40 * 8 + 8 * 10 + 10)
    built = build_method("mimo", "mlp", m, w)
    assert method_param_count("mimo", "mlp", m, w) == sum(p.numel() for p in built.parameters())


def test_sampler_input_repetition_and_batch_repetitions() -> None:
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    same = mimo_index_sampler(3, input_repetition=1.0, batch_repetitions=1)(20, 8, gens)
    assert all(torch.equal(b[0], b[1]) and torch.equal(b[1], b[2]) for b in same)
    batches = mimo_index_sampler(3, input_repetition=0.0, batch_repetitions=2)(20, 8, gens)
    assert [tuple(b.shape) for b in batches] == [(3, 16), (3, 16), (3, 8)]
    for b in batches:  # every member sees each example of the step exactly r times
        for row in b:
            assert torch.equal(row.sort().values, b[0].sort().values)
            assert (row.bincount(minlength=20)[row.unique()] == 2).all()
    assert not torch.equal(batches[0][0], batches[0][1])
    half = mimo_index_sampler(2, input_repetition=0.5, batch_repetitions=1)(16, 16, gens)[0]
    assert torch.equal(half[0, 8:], half[1, 8:])
