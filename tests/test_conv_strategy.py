"""The measured conv-strategy table: nearest measured shape wins; unmeasured devices get the grouped conv."""

import pytest

from ensplit.layers.conv_strategy import TABLE, choose_strategy
from ensplit.layers.member import MemberConv


def test_measured_rows_choose_themselves():
    for device, dim, members, channels, spatial, choice in TABLE:
        assert choose_strategy(device, dim, members, channels, spatial) == choice
        MemberConv(2, dim, 3, 4, 3, strategy=choice)  # every choice is one MemberConv implements


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_unmeasured_devices_get_grouped(device):
    assert choose_strategy(device, 2, 8, 16, 32) == "grouped"


def test_nearest_shape_in_log_space():
    assert choose_strategy("cpu", 2, 8, 16, 32) == "loop"  # between the two loop rows
    assert choose_strategy("cpu", 2, 8, 128, 4) == "grouped"
