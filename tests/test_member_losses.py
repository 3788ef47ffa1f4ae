"""member_losses against a loop over members of F.cross_entropy (values and gradients, float64), in both
layouts a model can hand logits on in, with label smoothing, and for a plain network."""

import pytest
import torch
import torch.nn.functional as F

from ensplit.train.loss import member_losses


def _loop(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    return torch.stack([F.cross_entropy(logits[m], targets[m], label_smoothing=smoothing)
                        for m in range(logits.shape[0])])


@pytest.mark.parametrize("classes_innermost", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_member_losses_equal_a_loop_over_members(float64_default, classes_innermost, smoothing):
    torch.manual_seed(7)
    values = torch.randn(4, 9, 10) * 3
    logits = values if classes_innermost else values.transpose(1, 2).contiguous().transpose(1, 2)
    assert (logits.stride(-1) == 1) is classes_innermost
    logits.requires_grad_(True)
    targets = torch.randint(0, 10, (4, 9))
    ours, theirs = member_losses(logits, targets, smoothing), _loop(logits, targets, smoothing)
    weights = torch.randn(4)
    (got,) = torch.autograd.grad(ours, logits, weights)
    (expected,) = torch.autograd.grad(theirs, logits, weights)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-13)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-13)


def test_shared_targets_expanded_over_members(float64_default):
    logits = torch.randn(3, 10, 5).transpose(1, 2)
    targets = torch.randint(0, 10, (5,)).expand(3, -1)
    torch.testing.assert_close(member_losses(logits, targets), _loop(logits, targets, 0.0), rtol=0, atol=1e-13)


def test_a_plain_network_is_one_member(float64_default):
    logits, targets = torch.randn(6, 10), torch.randint(0, 10, (6,))
    torch.testing.assert_close(member_losses(logits, targets), F.cross_entropy(logits, targets).unsqueeze(0),
                               rtol=0, atol=0)
