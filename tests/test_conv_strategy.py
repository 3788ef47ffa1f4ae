"""The measured conv-strategy table: nearest measured shape wins; unmeasured devices get the grouped conv;
MemberConv's "auto" follows it; a table file named by $ENSPLIT_CONV_TABLE replaces its device types' rows."""

import json
from pathlib import Path

import pytest
import torch

from ensplit.errors import EnsplitError
from ensplit.layers import member as member_module
from ensplit.layers.conv_strategy import ENV_VAR, TABLE, active_table, choose_strategy
from ensplit.layers.member import MemberConv


@pytest.fixture(autouse=True)
def _no_user_table(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_measured_rows_choose_themselves():
    for device, dim, members, in_channels, out_channels, spatial, choice in TABLE:
        assert choose_strategy(device, dim, members, in_channels, spatial, out_channels) == choice
        MemberConv(2, dim, 3, 4, 3, strategy=choice)  # every choice is one MemberConv implements


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_unmeasured_devices_get_grouped(device):
    assert choose_strategy(device, 2, 8, 16, 32) == "grouped"


def test_nearest_shape_in_log_space():
    assert choose_strategy("cpu", 2, 8, 128, 4) == "grouped"
    assert choose_strategy("cpu", 2, 4, 16, 30) == "grouped"
    # 1-d layers, first (one input channel) and hidden, run channels-last on the CPU
    assert choose_strategy("cpu", 1, 8, 1, 40, 24) == "grouped_nhwc"
    assert choose_strategy("cpu", 1, 8, 24, 20, 24) == "grouped_nhwc"
    assert choose_strategy("cuda", 1, 8, 24, 20, 24) == "grouped"


# --- strategy "auto" in MemberConv, and tables measured elsewhere ($ENSPLIT_CONV_TABLE) ---------------


def _auto_choice(members, dim, channels, size):
    conv = MemberConv(members, dim, channels, channels, 3, padding=1)
    assert conv.strategy == "auto"
    x = torch.randn(members, 2, channels, *([size] * dim))
    with torch.no_grad():
        conv(x)
    return conv.resolved_strategy(x), conv._auto_choices


def test_auto_follows_the_table_on_cpu(tmp_path, monkeypatch):
    choice, cache = _auto_choice(4, 2, 64, 8)
    assert choice == "grouped" and cache == {("cpu", (8, 8)): "grouped"}
    assert _auto_choice(16, 1, 16, 40)[0] == "grouped_nhwc"
    monkeypatch.setenv(ENV_VAR, str(_write(tmp_path, [["cpu", 2, 4, 16, 32, "loop"]])))
    choice, cache = _auto_choice(4, 2, 16, 32)  # a table that says loop: auto runs the loop
    assert choice == "loop" and cache == {("cpu", (32, 32)): "loop"}


def test_auto_asks_the_table_once_per_device_and_shape(monkeypatch):
    calls = []

    def counting(*args):
        calls.append(args)
        return "loop"

    monkeypatch.setattr(member_module, "choose_strategy", counting)
    conv = MemberConv(3, 2, 4, 5, 3, padding=1)
    for size in (6, 6, 6, 7, 6):
        conv(torch.randn(3, 2, 4, size, size))
    assert calls == [("cpu", 2, 3, 4, 6, 5), ("cpu", 2, 3, 4, 7, 5)]
    conv(torch.randn(3, 2, 4, 4, 9))  # a non-square image counts as the square of the same area
    assert calls[-1] == ("cpu", 2, 3, 4, 6, 5)


@pytest.mark.parametrize("dim,groups,batch", [(1, 1, (5,)), (2, 1, (5,)), (2, 2, (2, 3)), (1, 2, ())])
def test_auto_grouped_and_loop_agree(float64_default, dim, groups, batch):
    torch.manual_seed(0)
    template = MemberConv(3, dim, 4, 6, 3, stride=2, padding=1, groups=groups)
    x = torch.randn(3, *batch, 4, *([9] * dim))
    outputs, grads = {}, {}
    for strategy in ("auto", "grouped", "loop"):
        conv = MemberConv(3, dim, 4, 6, 3, stride=2, padding=1, groups=groups, strategy=strategy)
        conv.load_state_dict(template.state_dict())
        xs = x.clone().requires_grad_(True)
        y = conv(xs)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        outputs[strategy] = y.detach()
        grads[strategy] = (xs.grad, conv.weight.grad, conv.bias.grad)
    assert outputs["grouped"].shape == (3, *batch, 6, *([5] * dim))
    for strategy in ("auto", "loop"):
        torch.testing.assert_close(outputs[strategy], outputs["grouped"], atol=1e-10, rtol=0)
        for got, want in zip(grads[strategy], grads["grouped"], strict=True):
            torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


def test_auto_runs_a_one_channel_first_layer_channels_last_and_matches_grouped(float64_default):
    conv = MemberConv(8, 1, 1, 16, 5, padding=2)
    x = torch.randn(8, 3, 1, 40)
    grouped = MemberConv(8, 1, 1, 16, 5, padding=2, strategy="grouped")
    grouped.load_state_dict(conv.state_dict())
    torch.testing.assert_close(conv(x), grouped(x), atol=1e-12, rtol=0)
    assert conv.resolved_strategy(x) == "grouped_nhwc"


def test_table_rows_with_and_without_output_channels(tmp_path, monkeypatch):
    path = _write(tmp_path, [["cpu", 1, 8, 1, 16, 40, "im2col"], ["cpu", 1, 8, 1, 64, 40, "loop"],
                             ["cpu", 1, 8, 32, 20, "grouped_nhwc"]])
    monkeypatch.setenv(ENV_VAR, str(path))
    assert choose_strategy("cpu", 1, 8, 1, 40, 16) == "im2col"
    assert choose_strategy("cpu", 1, 8, 1, 40, 64) == "loop"  # same input shape, wider output
    assert choose_strategy("cpu", 1, 8, 32, 20) == "grouped_nhwc"  # six fields: out = in channels


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown conv strategy"):
        MemberConv(2, 2, 3, 4, 3, strategy="vmap")


def _write(tmp_path: Path, rows, name="table.json") -> Path:
    path = tmp_path / name
    path.write_text(rows if isinstance(rows, str) else json.dumps(rows), encoding="utf-8")
    return path


def test_a_user_table_replaces_the_rows_of_its_device_types(tmp_path, monkeypatch):
    path = _write(tmp_path, [["cuda", 2, 8, 16, 32, "loop"], ["cuda", 2, 8, 128, 8, "grouped"],
                             ["cpu", 2, 4, 16, 32, "grouped"]])
    monkeypatch.setenv(ENV_VAR, str(path))
    assert choose_strategy("cuda", 2, 8, 16, 32) == "loop"  # unmeasured before: grouped
    assert choose_strategy("cuda", 2, 8, 128, 8) == "grouped"
    assert choose_strategy("cpu", 2, 4, 16, 32) == "grouped"
    assert choose_strategy("cpu", 1, 8, 1, 40, 16) == "grouped"  # the built-in cpu 1-d rows are gone
    assert [r for r in active_table() if r[0] == "cpu"] == [("cpu", 2, 4, 16, 32, "grouped")]
    assert _auto_choice(4, 2, 16, 32)[0] == "grouped"
    monkeypatch.delenv(ENV_VAR)
    assert choose_strategy("cpu", 1, 8, 1, 40, 16) == "grouped_nhwc"


@pytest.mark.parametrize("content,needle", [
    ("[[\"cpu\", 2, 4, 16, 32, \"loop\"", "not readable JSON"),
    ({"cpu": []}, "non-empty JSON list"),
    ([], "non-empty JSON list"),
    ([["cpu", 2, 4, 16, 32]], "row 0"),
    ([["cpu", 2, 4, 16, 32, "loop"], ["cpu", 3, 4, 16, 32, "loop"]], "row 1"),
    ([["cpu", 2, 4, 16, 32, "vmap"]], "row 0"),
    ([["cpu", 1, 4, 1, 16, 40, 2, "im2col"]], "row 0"),
    ([["cpu", 2, 0, 16, 32, "loop"]], "row 0"),
    ([["cpu", 2, 4.5, 16, 32, "loop"]], "row 0"),
])
def test_a_malformed_table_is_a_one_line_error(tmp_path, monkeypatch, content, needle):
    monkeypatch.setenv(ENV_VAR, str(_write(tmp_path, content)))
    with pytest.raises(EnsplitError, match=needle) as error:
        choose_strategy("cpu", 2, 4, 16, 32)
    assert ENV_VAR in str(error.value) and "\n" not in str(error.value)


def test_a_missing_table_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere.json"))
    with pytest.raises(EnsplitError, match="not found"):
        MemberConv(2, 2, 3, 4, 3, padding=1)(torch.randn(2, 1, 3, 5, 5))


def test_the_benchmark_writes_a_table_the_loader_reads(tmp_path, monkeypatch, benchmark_script):
    bench = benchmark_script("bench_member_conv")  # imports only; nothing is timed
    rows = [["cuda", 2, 4, 16, 32, "loop"], ["cuda", 1, 16, 64, 40, "grouped"]]
    bench.write_table(rows, tmp_path / "out" / "cuda.json")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "out" / "cuda.json"))
    assert [list(r) for r in active_table() if r[0] == "cuda"] == rows
    assert choose_strategy("cuda", 2, 4, 16, 32) == "loop"
