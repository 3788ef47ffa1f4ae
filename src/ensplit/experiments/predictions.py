"""Bring your own predictions: the memory-split analysis and the metrics of pools made by any framework.

Pools are `.npz` files (see `ensplit.store.npz_pools`): `log_probs` or `logits` `[members, N, classes]`,
`labels` `[N]`, and for `analyze` the `params_per_member` of each file's member size.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ensplit.analysis.study_pools import StudyAnalysis, analyze_pools, missing_bands, summary_dict
from ensplit.errors import EnsplitError
from ensplit.metrics import classification_metrics, cnll_ttcv, ensemble_log_probs
from ensplit.store.npz_pools import load_pool, load_pools


@dataclass
class AnalyzeResult:
    """The seed-000 analysis of `.npz` pools. `to_json()` is what `ensplit analyze --json` prints."""

    analysis: StudyAnalysis
    folder: Path
    report: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return summary_dict(self.analysis, self.folder)


def analyze(inputs: Sequence[str | Path], out: str | Path = "ensplit-analysis", temperature: str = "before",
            splits: int = 5, predict_max_n: int = 4, predict_pool: int = 6, bootstrap: int = 40,
            report: bool = True) -> AnalyzeResult:
    """Power laws, the memory split and its prediction from `.npz` pools (files or folders of them)."""
    if temperature not in ("before", "after"):
        raise EnsplitError(f"temperature = {temperature!r}: must be before or after")
    for name, value, low in (("splits", splits, 1), ("predict_max_n", predict_max_n, 3),
                             ("predict_pool", predict_pool, 3), ("bootstrap", bootstrap, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise EnsplitError(f"{name} = {value!r}: must be an integer >= {low}")
    pools = load_pools([str(p) for p in inputs])
    if len(pools) < 2:
        raise EnsplitError("analyze needs pools of at least two member sizes (one .npz per size)")
    analysis = analyze_pools([(None, p.params_per_member, p.log_probs) for p in pools], pools[0].labels,
                             temperature, splits, predict_max_n, predict_pool, bootstrap)
    message = missing_bands(analysis, bootstrap)
    if message:
        print(f"ensplit analyze: {message}", file=sys.stderr)
    out = Path(out)
    path = None
    if report:
        from ensplit.report.study_report import write_study_report

        path = write_study_report(analysis, out / "report.html")
        print(f"ensplit analyze: report written to {path}", file=sys.stderr)
    return AnalyzeResult(analysis, out, path)


def _metrics(member_log_probs: torch.Tensor, labels: torch.Tensor, splits: int, seed: int) -> dict[str, Any]:
    base = {k: float(v) for k, v in classification_metrics(ensemble_log_probs(member_log_probs), labels).items()}
    if member_log_probs.shape[0] > 1:
        base["cnll_before"] = float(cnll_ttcv(member_log_probs, labels, "before", splits, seed))
        base["cnll_after"] = float(cnll_ttcv(member_log_probs, labels, "after", splits, seed))
    else:
        base["cnll_before"] = base["cnll_after"] = None
    return base


@dataclass
class EvaluateResult:
    """Metrics of an ensemble and of each member. `to_json()` is what `ensplit evaluate --json` prints."""

    ensemble: dict[str, Any]
    members: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"ensemble": self.ensemble, "members": self.members}


def evaluate(file: str | Path, splits: int = 5, seed: int = 0) -> EvaluateResult:
    """Accuracy, NLL, Brier, ECE (percent) and CNLL before/after averaging of a `.npz` ensemble."""
    if isinstance(splits, bool) or not isinstance(splits, int) or splits < 1:
        raise EnsplitError(f"splits = {splits!r}: must be an integer >= 1")
    pool = load_pool(file)
    members = [_metrics(pool.log_probs[i : i + 1], pool.labels, splits, seed) for i in range(pool.log_probs.shape[0])]
    return EvaluateResult(_metrics(pool.log_probs, pool.labels, splits, seed), members)
