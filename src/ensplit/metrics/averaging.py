"""Averaged probabilities of many ensembles drawn from one pool, computed once and shared by every metric.

An ensemble averages its members' probabilities (science.md §1). Pool estimates score ⌊ℓ/n⌋ disjoint
ensembles for every n, and `disjoint_ensembles` cuts all of them from one seeded permutation, so every
ensemble is a run of consecutive networks in that order. A run's sum is assembled from sums over aligned
power-of-two blocks of the order (at most 2·log2 n blocks per run): for ℓ = 64 and n = 1..64, 600 block
additions instead of 3,403 member additions. Every term is a partial sum of the same non-negative values,
so the result is as exact as summing member by member (prefix sums would cancel). Index sets that are not
runs of one order are summed member by member. Either way the sums are one `embedding_bag` (a sum of
table rows per bag).

Work is done classes first (`[C, E, objects]`: class maxima and sums are element-wise operations on
slabs) and in chunks of objects small enough to stay in cache: on a 2-core machine a fresh 45 MB tensor
costs more in page faults than the arithmetic that fills it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ensplit.metrics.classification import ECE_BINS

LOG_PROB_FLOOR = -1e4  # −inf log-probabilities (p = 0) are floored for the temperature search
# Sums below these lose digits to subnormals: those entries are redone in log space.
TINY = {torch.float32: 1e-30, torch.float64: 1e-290}
_CHUNK_ELEMENTS = 1 << 18  # classes × ensembles × objects per chunk


def _common_order(index_sets: Sequence[torch.Tensor], pool_size: int) -> torch.Tensor | None:
    """An order of (some of) the pool in which every row of every set is a run of consecutive entries, or None.

    The candidate is the flattened set with the most entries (for a pool curve, n = 1: the whole
    permutation); every other row must sit at consecutive positions of it.
    """
    flat = [ix.reshape(-1) for ix in index_sets if ix.numel()]
    if not flat:
        return None
    order = max(flat, key=len)
    position = torch.full((pool_size,), -1, dtype=torch.long)
    position[order] = torch.arange(len(order))
    if not torch.equal(position[order], torch.arange(len(order))):  # a network twice in the candidate
        return None
    for ix in index_sets:
        if ix.numel() == 0:
            continue
        at = position[ix]
        if bool((at < 0).any()) or not torch.equal(at, at[:, :1] + torch.arange(ix.shape[1])):
            return None
    return order


def _dyadic_parts(start: int, stop: int, level_offsets: Sequence[int]) -> list[int]:
    """Rows of the block table whose blocks tile positions [start, stop), largest aligned block first."""
    parts = []
    while start < stop:
        level = 0
        while start % (2 << level) == 0 and start + (2 << level) <= stop and level + 1 < len(level_offsets):
            level += 1
        parts.append(level_offsets[level] + (start >> level))
        start += 1 << level
    return parts


class MemberSums:
    """Sums of a per-member table over the members of every ensemble of every index set (`[E_k, n_k]`
    each), the sets' ensembles one after another (ΣE_k = E rows). The plan (block runs or member by member)
    is made once and reused for every table."""

    def __init__(self, index_sets: Sequence[torch.Tensor], pool_size: int) -> None:
        self.index_sets = [ix.long().reshape(len(ix), -1) for ix in index_sets]
        self.sizes = [len(ix) for ix in self.index_sets]
        self.ensembles = sum(self.sizes)
        self.members = torch.tensor([ix.shape[1] for ix in self.index_sets for _ in range(len(ix))],
                                    dtype=torch.long)
        width = max((ix.shape[1] for ix in self.index_sets), default=1)
        self.member_table = torch.zeros(self.ensembles, width, dtype=torch.long)  # zero-padded member indices
        for ix, rows in zip(self.index_sets, self.split(torch.arange(self.ensembles)), strict=True):
            self.member_table[rows, : ix.shape[1]] = ix
        self.order = _common_order(self.index_sets, pool_size)
        if self.order is None:
            self.rows = pool_size
            bags = [row for ix in self.index_sets for row in ix.tolist()]
        else:
            counts = [len(self.order)]
            while counts[-1] >= 2:
                counts.append(counts[-1] // 2)
            self.level_counts = counts
            self.level_offsets = [sum(counts[:level]) for level in range(len(counts))]
            self.rows = sum(counts)
            position = torch.full((pool_size,), -1, dtype=torch.long)
            position[self.order] = torch.arange(len(self.order))
            bags = [_dyadic_parts(start, start + ix.shape[1], self.level_offsets)
                    for ix in self.index_sets for start in (position[ix[:, 0]].tolist() if ix.numel() else [])]
        self.index = torch.tensor([r for bag in bags for r in bag], dtype=torch.long)
        self.bag_sizes = torch.tensor([len(bag) for bag in bags], dtype=torch.long)
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.bag_sizes[:-1].cumsum(0)])
        self._class_bags: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def split(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """`[E, ...]` -> one tensor per index set."""
        return list(torch.split(rows, self.sizes))

    def _base(self, table: torch.Tensor) -> torch.Tensor:
        """The rows the bags sum: the table itself, or its sums over the aligned power-of-two blocks of the
        order, all levels stacked `[rows, *rest]`."""
        if self.order is None:
            return table
        blocks = torch.empty(self.rows, *table.shape[1:], dtype=table.dtype)
        torch.index_select(table, 0, self.order, out=blocks[: self.level_counts[0]])
        for level in range(1, len(self.level_counts)):
            below = self.level_offsets[level - 1]
            pairs = blocks[below : below + 2 * self.level_counts[level]]
            start = self.level_offsets[level]
            torch.add(pairs[0::2], pairs[1::2], out=blocks[start : start + self.level_counts[level]])
        return blocks

    def __call__(self, table: torch.Tensor) -> torch.Tensor:
        """`[M, *rest]` -> `[E, *rest]`."""
        base = self._base(table.contiguous())
        out = F.embedding_bag(self.index, base.reshape(base.shape[0], -1), self.offsets, mode="sum")
        return out.reshape(self.ensembles, *table.shape[1:])

    def class_major(self, table: torch.Tensor, mean: bool = False) -> torch.Tensor:
        """`[M, C, X]` -> `[C, E, X]`: one bag per class and ensemble, so no transpose is needed. With
        `mean`, the sums are divided by each ensemble's member count."""
        classes = table.shape[1]
        if classes not in self._class_bags:
            self._class_bags[classes] = (
                torch.cat([self.index * classes + c for c in range(classes)]),
                torch.cat([self.offsets + c * len(self.index) for c in range(classes)]))
        index, offsets = self._class_bags[classes]
        weights = None
        if mean:
            weights = (1.0 / self.members.to(table.dtype)).repeat_interleave(self.bag_sizes).repeat(classes)
        base = self._base(table.contiguous())
        out = F.embedding_bag(index, base.reshape(-1, base.shape[2]), offsets, mode="sum",
                              per_sample_weights=weights)
        return out.view(classes, self.ensembles, table.shape[2])


def log_sum_fallback(values: torch.Tensor, sums: MemberSums, rows: torch.Tensor, columns: tuple[torch.Tensor, ...]
                     ) -> torch.Tensor:
    """log Σ_{i∈e} exp(values[i, *columns]) for ensembles `rows` `[K]`, by log-sum-exp over their members.

    values `[M, ...]` (log scale); columns index its other dims. For the entries whose plain sum underflowed.
    """
    out = torch.empty(len(rows), dtype=values.dtype)
    sizes = sums.members[rows]
    for n in sizes.unique().tolist():
        pick = torch.nonzero(sizes == n).squeeze(1)
        members = sums.member_table[rows[pick], :n]  # [K_n, n]
        out[pick] = torch.logsumexp(values[(members,) + tuple(c[pick].unsqueeze(1) for c in columns)], 1)
    return out


@dataclass(frozen=True)
class Gaps:
    """d_c = log p̄_c − max_c log p̄ of every ensemble (log p̄ floored at LOG_PROB_FLOOR first), classes first,
    in chunks of objects: `chunks[k]` `[C, E, o_k]` for objects `parts[k]`, `true[k]` `[E, o_k]` (d at the
    label). In the pool's dtype. What the after-averaging temperature search reads."""

    chunks: list[torch.Tensor]
    true: list[torch.Tensor]
    parts: list[slice]
    lowest: list[float]  # the smallest gap of each chunk


@dataclass(frozen=True)
class Averaged:
    """Uncalibrated metrics of every ensemble (the index sets' ensembles one after another), `[E]` each:
    accuracy, nll, brier, ece (percent); and the gaps if asked for."""

    metrics: dict[str, torch.Tensor]
    gaps: Gaps | None


def _label_is_first_max(at_top: torch.Tensor, label_at_top: torch.Tensor, scores: torch.Tensor,
                        y: torch.Tensor) -> torch.Tensor:
    """argmax_c == label with argmax's tie rule (the first maximum wins). at_top `[C, E, o]` (bool: class at
    the maximum), label_at_top `[E, o]`, scores `[C, E, o]` (what argmax would read), y `[1, E, o]`."""
    tied = at_top.view(torch.uint8).sum(0, dtype=torch.uint8) > 1
    correct = label_at_top.clone()
    if bool(tied.any()):  # exact ties (a network with constant output, say): rare, done one by one
        e, j = tied.nonzero(as_tuple=True)
        correct[e, j] = scores[:, e, j].argmax(0) == y[0, e, j]
    return correct


@dataclass(frozen=True)
class _Chunk:
    """One chunk of objects, classes first: members `[M, C, o]` (log p), shift `[C, o]` (the pool's best
    member log p, floored), mean_scaled `[C, E, o]` (p̄ / e^shift), labels `[o]`, y `[1, E, o]` (the labels
    per ensemble), may_underflow (some member is far enough below the pool's best for a sum to underflow)."""

    members: torch.Tensor
    shift: torch.Tensor
    mean_scaled: torch.Tensor
    labels: torch.Tensor
    y: torch.Tensor
    may_underflow: bool


class _ChunkScores(NamedTuple):
    """What the totals read from one chunk, `[E, o]` each but mean `[C, E, o]` (p̄): the top probability,
    the label's probability and log-probability, and whether the label is argmax."""

    mean: torch.Tensor
    top: torch.Tensor
    true_prob: torch.Tensor
    true_log: torch.Tensor
    correct: torch.Tensor


def _average_chunk(pool_log_probs: torch.Tensor, labels: torch.Tensor, sums: MemberSums, part: slice,
                   log_tiny: float) -> _Chunk:
    """Every ensemble's mean probability over the objects `part`, each object and class scaled by its largest
    member probability over the pool."""
    members = pool_log_probs[:, part].transpose(1, 2).contiguous()  # [M, C, objects]
    shift = members.amax(0).clamp_(min=LOG_PROB_FLOOR)  # [C, objects]
    scaled = torch.exp(members - shift)
    mean_scaled = sums.class_major(scaled, mean=True)  # p̄ / e^shift, [C, E, objects]
    # A sum can underflow only where some member is far below the pool's best.
    may_underflow = bool((members.amin(0) - shift).min() < log_tiny)
    y = labels[part].view(1, 1, -1).expand(1, sums.ensembles, -1)
    return _Chunk(members, shift, mean_scaled, labels[part], y, may_underflow)


def _score_true_class(chunk: _Chunk, sums: MemberSums, log_n: torch.Tensor) -> _ChunkScores:
    """Score a chunk reading only the true class's log p̄ (no gaps kept). Scales `chunk.mean_scaled` in place."""
    dtype, y, shift = chunk.members.dtype, chunk.y, chunk.shift
    true_scaled = chunk.mean_scaled.gather(0, y).squeeze(0)
    true_log = true_scaled.log() + shift.gather(0, y[:, 0])
    if chunk.may_underflow and bool((true_scaled < TINY[dtype]).any()):
        e, j = (true_scaled < TINY[dtype]).nonzero(as_tuple=True)
        true_log[e, j] = log_sum_fallback(chunk.members, sums, e, (chunk.labels[j], j)) - log_n[0, e, 0]
    mean = chunk.mean_scaled.mul_(shift.exp().unsqueeze(1))
    top = mean.amax(0)
    true_prob = mean.gather(0, y).squeeze(0)
    at_top = mean == top
    correct = _label_is_first_max(at_top, true_prob == top, mean, y)
    return _ChunkScores(mean, top, true_prob, true_log, correct)


def _score_with_gaps(chunk: _Chunk, sums: MemberSums, log_n: torch.Tensor, floored: bool, part: slice,
                     gaps: Gaps) -> _ChunkScores:
    """Score a chunk from every class's log p̄, appending the chunk's gaps to `gaps`. Scales
    `chunk.mean_scaled` in place."""
    dtype, y, shift, mean_scaled = chunk.members.dtype, chunk.y, chunk.shift, chunk.mean_scaled
    log_mean = torch.log(mean_scaled).add_(shift.unsqueeze(1))
    if chunk.may_underflow and float(mean_scaled.min()) < TINY[dtype]:
        c, e, j = (mean_scaled < TINY[dtype]).nonzero(as_tuple=True)
        log_mean[c, e, j] = log_sum_fallback(chunk.members, sums, e, (c, j)) - log_n[0, e, 0]
    true_log = log_mean.gather(0, y).squeeze(0)
    if floored:
        log_mean.clamp_(min=LOG_PROB_FLOOR)
    top_log = log_mean.amax(0)
    chunk_gaps = log_mean.sub_(top_log)
    true_gap = chunk_gaps.gather(0, y).squeeze(0)
    gaps.chunks.append(chunk_gaps)
    gaps.true.append(true_gap)
    gaps.parts.append(part)
    gaps.lowest.append(float(chunk_gaps.amin()))
    mean = mean_scaled.mul_(shift.exp().unsqueeze(1))
    top, true_prob = top_log.exp(), true_log.exp()
    correct = _label_is_first_max(chunk_gaps == 0, true_gap == 0, chunk_gaps, y)
    return _ChunkScores(mean, top, true_prob, true_log, correct)


def _add_chunk_totals(scores: _ChunkScores, totals: dict[str, torch.Tensor], ece_gap: torch.Tensor) -> None:
    """Add a chunk's per-ensemble sums over its objects (float64) to `totals` and `ece_gap` `[E, ECE_BINS]`."""
    correct = scores.correct.to(scores.mean.dtype)
    totals["correct"] += correct.sum(1, dtype=torch.float64)
    totals["true_log"] += scores.true_log.sum(1, dtype=torch.float64)
    brier = (scores.mean * scores.mean).sum(0) - 2 * scores.true_prob + 1  # ||p̄ − e_y||²
    totals["brier"] += brier.sum(1, dtype=torch.float64)
    bins = (torch.ceil(scores.top * ECE_BINS).long() - 1).clamp_(0, ECE_BINS - 1)
    ece_gap.scatter_add_(1, bins, (scores.top - correct).double())


def average_ensembles(pool_log_probs: torch.Tensor, labels: torch.Tensor, sums: MemberSums,
                      keep_gaps: bool = False) -> Averaged:
    """Average every ensemble's probabilities once and score the averages.

    pool_log_probs `[M, N, C]` (float32 or float64: the arithmetic stays in that dtype, as log-sum-exp did),
    labels `[N]`. Each object and class is scaled by its largest member probability over the pool before
    summing, so a sum underflows only if every member of an ensemble is ~69 nats (float32) below the pool's
    best; those entries get log p̄ from a log-sum-exp over the members, so it is exact there too.
    Per-ensemble sums over objects are accumulated chunk by chunk (float64); nothing `[E, N]` is stored.
    """
    num_objects, num_classes = pool_log_probs.shape[1:]
    dtype = pool_log_probs.dtype
    log_tiny = math.log(TINY[dtype])
    count = sums.ensembles
    chunk = max(1, _CHUNK_ELEMENTS // max(1, count * num_classes))
    floored = bool(pool_log_probs.min() < LOG_PROB_FLOOR - log_tiny)  # else no log p̄ can reach the floor
    totals = {name: torch.zeros(count, dtype=torch.float64) for name in ("correct", "true_log", "brier")}
    ece_gap = torch.zeros(count, ECE_BINS, dtype=torch.float64)  # Σ (confidence − correct) per bin
    gaps = Gaps([], [], [], []) if keep_gaps else None
    log_n = sums.members.to(dtype).log().view(1, -1, 1)
    for start in range(0, num_objects, chunk):
        part = slice(start, min(start + chunk, num_objects))
        averaged = _average_chunk(pool_log_probs, labels, sums, part, log_tiny)
        if gaps is None:  # only the true class's log is needed
            scores = _score_true_class(averaged, sums, log_n)
        else:
            scores = _score_with_gaps(averaged, sums, log_n, floored, part, gaps)
        _add_chunk_totals(scores, totals, ece_gap)
    metrics = {"accuracy": totals["correct"] / num_objects, "nll": -totals["true_log"] / num_objects,
               "brier": totals["brier"] / num_objects, "ece": 100.0 * ece_gap.abs().sum(1) / num_objects}
    return Averaged(metrics, gaps)
