"""The one training loop: member-batched, data resident on the device, no host sync inside an epoch."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from ensplit.data.dataset import Dataset
from ensplit.errors import EnsplitError
from ensplit.train.allocator import keep_freed_memory
from ensplit.train.config import PRECISIONS, TrainConfig
from ensplit.train.loss import member_losses
from ensplit.train.optim import make_optimizer, make_schedule

IndexSampler = Callable[[int, int, Sequence[torch.Generator]], torch.Tensor]


@dataclass
class TrainResult:
    """What one training run produced, besides the weights.

    seconds_per_epoch: each epoch's wall-clock seconds (its training steps only: test accuracy and `on_epoch`
    are not timed); the one figure reported from them is `ensplit.train.epoch_time.seconds_per_epoch`.
    train_loss: per epoch, each member's mean training loss. failed: members whose loss or weights
    became non-finite (their slice is kept but must not be used). test_accuracy: per epoch and member
    (only with track_test_accuracy).
    """

    members: int
    seconds: float
    seconds_per_epoch: list[float] = field(default_factory=list)
    train_loss: list[list[float]] = field(default_factory=list)
    test_accuracy: list[list[float]] = field(default_factory=list)
    failed: list[bool] = field(default_factory=list)


def member_generators(seeds: Sequence[int], offset: int = 0) -> list[torch.Generator]:
    """One CPU generator per member: a member's data order never depends on its batch-mates."""
    return [torch.Generator().manual_seed(int(s) * 7919 + offset) for s in seeds]


def epoch_indices(n: int, batch_size: int, generators: Sequence[torch.Generator], batching: str) -> torch.Tensor:
    """Index batches for one epoch: `[steps, M, B]` (independent) or `[steps, 1, B]` (shared)."""
    if batching == "shared":
        orders = torch.randperm(n, generator=generators[0]).unsqueeze(0)
    else:
        orders = torch.stack([torch.randperm(n, generator=g) for g in generators])
    steps = math.ceil(n / batch_size)
    return [orders[:, i * batch_size : (i + 1) * batch_size] for i in range(steps)]


def _model_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _augmenter(dataset: Dataset, config: TrainConfig):
    if dataset.kind != "image" or not config.augment:
        return None
    from ensplit.data.augment import random_crop_flip

    return random_crop_flip


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context of a precision: "bf16" runs eligible ops (matmuls, convs) in bfloat16 while the
    weights stay in their own dtype; "fp32" disables autocast."""
    if precision not in PRECISIONS:
        raise EnsplitError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _channels_last_input(x: torch.Tensor) -> torch.Tensor:
    """A `[B, C, H, W]` image batch in NHWC. Member-batched `[M, B, C, H, W]` batches stay as they are: the
    first channels-last MemberConv packs them into NHWC with the one copy its packing makes anyway."""
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


@torch.no_grad()
def predict_log_probs(model: nn.Module, x: torch.Tensor, dataset: Dataset | None = None,
                      batch_size: int = 1024, precision: str = "fp32") -> torch.Tensor:
    """Member log-probabilities `[M, N, C]` of `model` on inputs `x` (eval mode, batched), in the model's
    dtype; with precision "bf16" the forward pass runs under bf16 autocast, as in training."""
    was_training = model.training
    model.eval()
    dtype = _model_dtype(model)
    outputs = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        xb = (dataset.prepare(xb) if dataset is not None else xb).to(dtype)
        with autocast(precision, xb.device):
            logits = model(xb)
        outputs.append(torch.log_softmax(logits.to(dtype), dim=-1))  # normalised in full precision
    model.train(was_training)
    return torch.cat(outputs, dim=1)


@dataclass
class _Step:
    """One optimisation step on the batch of indices `idx` (`[M or 1, B]`); returns each member's summed loss."""

    dataset: Dataset
    config: TrainConfig
    forward: Callable[[torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    augment: Callable | None
    aug_generators: Sequence[torch.Generator]
    members: int
    dtype: torch.dtype
    channels_last: bool

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        dataset, config, members = self.dataset, self.config, self.members
        xb = dataset.x_train[idx]  # [M or 1, B, ...], raw (uint8 for images)
        yb = dataset.y_train[idx]
        if self.augment is not None:  # crops pad with true zeros before normalisation
            xb = self.augment(xb, self.aug_generators if idx.shape[0] == members else self.aug_generators[:1])
        xb = dataset.prepare(xb).to(self.dtype)
        if idx.shape[0] == 1:
            xb, yb = xb[0], yb[0].expand(members, -1)
        if self.channels_last:
            xb = _channels_last_input(xb)
        device = dataset.x_train.device
        with autocast(config.precision, device):  # bf16: forward and loss; backward and step outside
            logits = self.forward(xb).to(self.dtype)  # the loss in full precision whatever autocast's policy
            per_member = member_losses(logits, yb, config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        per_member.sum().backward()
        self.optimizer.step()
        self.schedule.step()
        return per_member.detach().to(torch.float64) * yb.shape[1]


def train(model: nn.Module, dataset: Dataset, config: TrainConfig, member_seeds: Sequence[int],
          progress: bool = True, index_sampler: IndexSampler | None = None,
          on_epoch: Callable[[int, nn.Module], None] | None = None, description: str = "training") -> TrainResult:
    """Train `model` (forward → logits `[M, B, C]`) on `dataset`, which must already sit on the model's device.

    The loss is the SUM over members of each member's mean cross-entropy, so every member's gradient is
    what it would be if it trained alone. A custom `index_sampler(n, batch_size, generators)` returning
    `[steps, M or 1, B]` replaces the default batching (MIMO uses this). With `config.channels_last` and
    image inputs `[C, H, W]`, the model is converted to channels-last in place (and stays so). With
    `config.compile` only the training forward pass is compiled; `model` itself (its parameters, state dict
    and the predictions made from it) is unchanged.
    """
    members = len(member_seeds)
    generators = member_generators(member_seeds)
    aug_generators = member_generators(member_seeds, offset=1)
    augment = _augmenter(dataset, config)
    device = dataset.x_train.device
    if device.type == "cpu":
        keep_freed_memory()  # no page faults for every step's activations (ensplit.train.allocator)
    dtype = _model_dtype(model)
    channels_last = config.channels_last and len(dataset.in_shape) == 3  # 2-d images only
    if channels_last:
        model.to(memory_format=torch.channels_last)  # 4-d weights only: 1-d convs and linears are untouched
    # the compiled module shares the model's parameters and buffers; the first step pays for compilation
    forward = torch.compile(model) if config.compile else model
    n = dataset.x_train.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    optimizer = make_optimizer(model, config)  # the model's parameter groups (e.g. no decay on α)
    schedule = make_schedule(optimizer, config, steps_per_epoch)
    result = TrainResult(members=members, seconds=0.0, failed=[False] * members)
    step = _Step(dataset, config, forward, optimizer, schedule, augment, aug_generators, members, dtype, channels_last)
    bar = tqdm(range(config.epochs), desc=description, file=sys.stderr, disable=not progress, leave=False)
    start = time.perf_counter()
    model.train()
    for epoch in bar:
        epoch_start = time.perf_counter()
        batches = (index_sampler or (lambda n_, b_, g_: epoch_indices(n_, b_, g_, config.batching)))(
            n, config.batch_size, generators)
        if device.type == "cuda":  # one burst of index copies per epoch: a pageable copy in the step loop syncs
            batches = [b.to(device) for b in batches]
        loss_sum = torch.zeros(members, device=device, dtype=torch.float64)
        for idx in batches:
            loss_sum += step(idx.to(device, non_blocking=True))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        result.seconds_per_epoch.append(time.perf_counter() - epoch_start)
        epoch_loss = (loss_sum / n).tolist()
        result.train_loss.append(epoch_loss)
        result.failed = [f or not math.isfinite(v) for f, v in zip(result.failed, epoch_loss, strict=True)]
        if config.track_test_accuracy:
            lp = predict_log_probs(model, dataset.x_test, dataset, precision=config.precision)
            result.test_accuracy.append((lp.argmax(-1) == dataset.y_test).double().mean(1).tolist())
        if on_epoch is not None:
            on_epoch(epoch, model)
        finite = [v for v in epoch_loss if math.isfinite(v)]
        bar.set_postfix(loss=f"{sum(finite) / max(len(finite), 1):.4f}", failed=sum(result.failed))
        if all(result.failed):
            break
    result.seconds = time.perf_counter() - start
    return result
