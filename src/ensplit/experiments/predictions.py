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

from ensplit._version import provenance
from ensplit.analysis.ensemble_scores import score_before_after
from ensplit.analysis.study_pools import StudyAnalysis, analysis_notes, analyze_pools, summary_dict
from ensplit.errors import EnsplitError
from ensplit.jsonable import to_jsonable
from ensplit.settings import check_choice, check_int
from ensplit.settings.options import Bootstrap, CnllSplits, PredictMaxN, PredictPool, Seed, Temperature
from ensplit.store import folder_lock
from ensplit.store.npz_pools import load_pool, load_pools
from ensplit.store.ownership import claim_folder, report_and


@dataclass
class AnalyzeResult:
    """The memory-split analysis (Lobacheva et al.) of `.npz` pools; `to_json()` is what `analyze --json` prints."""

    analysis: StudyAnalysis
    folder: Path
    report: Path | None = None

    def to_json(self) -> dict[str, Any]:
        # no study folder (no index, no config): only the report, when one was written
        return to_jsonable({**summary_dict(self.analysis, None),
                            "report": None if self.report is None else str(self.report), **provenance()})


def analyze(inputs: Sequence[str | Path], out: str | Path = "ensplit-analysis", temperature: str = "before",
            cnll_splits: int = 5, predict_max_n: int = 4, predict_pool: int = 6, bootstrap: int = 40,
            report: bool = True) -> AnalyzeResult:
    """Power laws, the memory split and its prediction from `.npz` pools (files or folders of them). With
    `report`, `out` is claimed for the page, which the caller writes (`ensplit.reports.write(result, out)`).
    The settings take the study's analysis options (`ensplit.settings.groups.AnalysisFields`); the pools'
    files decide how many networks there are, so only the splits have an upper bound here."""
    check_choice("temperature", temperature, Temperature)
    check_int("cnll_splits", cnll_splits, CnllSplits)
    for name, value, option in (("predict_max_n", predict_max_n, PredictMaxN),
                                ("predict_pool", predict_pool, PredictPool), ("bootstrap", bootstrap, Bootstrap)):
        check_int(name, value, option, upper=False)
    if not isinstance(report, bool):
        raise EnsplitError(f"report = {report!r}: must be True or False")
    paths = [_path("inputs", inputs)] if isinstance(inputs, (str, Path)) else _paths(inputs)
    out = Path(_path("out", out))
    if not report:
        return AnalyzeResult(_analyze(paths, temperature, cnll_splits, predict_max_n, predict_pool, bootstrap), out)
    with folder_lock(out, "analyze"):  # an unusable --out is refused before any work
        claim_folder(out, "analyze", report_and())
        analysis = _analyze(paths, temperature, cnll_splits, predict_max_n, predict_pool, bootstrap)
    return AnalyzeResult(analysis, out)


def _analyze(paths: list[str], temperature: str, splits: int, predict_max_n: int, predict_pool: int,
             bootstrap: int) -> StudyAnalysis:
    pools = load_pools(paths)
    if len(pools) < 2:
        raise EnsplitError("analyze needs pools of at least two member sizes (one .npz per size)")
    analysis = analyze_pools([(None, p.params_per_member, p.log_probs) for p in pools], pools[0].labels,
                             temperature, splits, predict_max_n, predict_pool, bootstrap)
    for message in analysis_notes(analysis, bootstrap):
        print(f"ensplit analyze: {message}", file=sys.stderr)
    return analysis


def _path(name: str, value: Any) -> str:
    if not isinstance(value, (str, Path)):
        raise EnsplitError(f"{name} = {value!r}: must be a path (str or pathlib.Path)")
    return str(value)


def _paths(values: Any) -> list[str]:
    if not isinstance(values, Sequence) or not values:
        raise EnsplitError(f"inputs = {values!r}: must be a path or a non-empty list of .npz files or folders")
    return [_path("inputs", v) for v in values]


@dataclass
class EvaluateResult:
    """Metrics of an ensemble and of each member. `to_json()` is what `ensplit evaluate --json` prints."""

    ensemble: dict[str, Any]
    members: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return to_jsonable({"ensemble": self.ensemble, "members": self.members, **provenance()})


def evaluate(file: str | Path, cnll_splits: int = 5, seed: int = 0) -> EvaluateResult:
    """Accuracy, NLL, Brier, ECE (percent) and CNLL before/after averaging of a `.npz` ensemble."""
    check_int("cnll_splits", cnll_splits, CnllSplits)
    check_int("seed", seed, Seed)
    pool = load_pool(_path("file", file))
    if pool.log_probs.shape[0] > 1 and pool.labels.shape[0] < 2:
        raise EnsplitError(f"{file}: CNLL's test-time cross-validation needs at least 2 test objects, the file has "
                           f"{pool.labels.shape[0]}")
    members = [score_before_after(pool.log_probs[i : i + 1], pool.labels, cnll_splits, seed)
               for i in range(pool.log_probs.shape[0])]
    return EvaluateResult(score_before_after(pool.log_probs, pool.labels, cnll_splits, seed), members)
