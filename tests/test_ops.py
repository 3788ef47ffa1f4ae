"""Layer helpers: pooling over any leading dims (equal to pooling the folded tensor, no copy of a permuted
view) and the device generators behind dropout masks."""

import torch
import torch.nn.functional as F

from ensplit.layers.ops import avg_pool, max_pool, per_example


def test_pooling_a_permuted_view_equals_pooling_a_contiguous_copy():
    base = torch.randn(6, 3, 4, 10, dtype=torch.float64)  # [B, M, C, L] in memory
    view = base.transpose(0, 1)  # [M, B, C, L], as a member-batched conv hands it on
    for pool, reference in ((max_pool, F.max_pool1d), (avg_pool, F.avg_pool1d)):
        expected = reference(view.contiguous().reshape(-1, 4, 10), 2).reshape(3, 6, 4, 5)
        assert torch.equal(pool(view, 1, 2), expected)
    images = torch.randn(2, 5, 3, 8, 8, dtype=torch.float64).permute(1, 0, 2, 3, 4)
    expected = F.max_pool2d(images.contiguous().reshape(-1, 3, 8, 8), 2).reshape(5, 2, 3, 4, 4)
    assert torch.equal(max_pool(images, 2, 2), expected)


def test_folding_follows_memory_order_without_a_copy():
    base = torch.randn(6, 3, 4, 10)
    seen = []

    def probe(folded: torch.Tensor) -> torch.Tensor:
        seen.append(folded.data_ptr())
        return folded * 2

    out = per_example(probe, base.transpose(0, 1), trailing=2)
    assert seen == [base.data_ptr()]  # the fold was a view
    assert out.shape == (3, 6, 4, 10) and torch.equal(out, 2 * base.transpose(0, 1))


def test_masks_for_another_device_come_from_a_device_generator_seeded_once_from_the_member():
    from ensplit.layers.plain import generator_on

    member = torch.Generator().manual_seed(11)
    assert generator_on(member, torch.device("cpu"), {}) is member  # its own device: used as is
    reference = torch.Generator().manual_seed(11)
    expected_seed = int(torch.randint(0, 2**62, (1,), generator=reference))
    other = torch.device("cpu", 0)  # stands in for a GPU: a device the generator does not report
    cache: dict = {}
    first = generator_on(member, other, cache)
    assert first is not member and generator_on(member, other, cache) is first  # seeded once, then cached
    assert torch.equal(torch.rand(5, generator=first), torch.rand(5, generator=torch.Generator().manual_seed(
        expected_seed)))
    assert torch.equal(torch.rand(3, generator=member), torch.rand(3, generator=reference))  # drew one seed only
