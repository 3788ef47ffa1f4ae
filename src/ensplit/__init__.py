"""ensplit: one wide network, an ensemble of thinner ones, or a parameter-sharing ensemble?

The front door. Every experiment takes a typed config (or keyword settings, spelled like the command-line
options and the TOML keys) and returns a result whose `to_json()` is exactly what the command prints with
`--json`:

    import ensplit
    answer = ensplit.recommend(budget=80_000)          # the question ensplit exists for
    result = ensplit.study(widths="16,32,64", epochs=20, out="my-study")
    result = ensplit.compare(methods="single,deep,batchensemble", members=4, budget="23k")
    recipe = ensplit.Recipe(family="cnn1d", train=ensplit.TrainConfig(epochs=20))
    result = ensplit.compare(recipe=recipe, methods="single,deep")

Experiments: recommend (all of them at one budget, predicted and verified), study (memory split, Lobacheva
et al. 2020), compare (sharing methods, the MixtureEnsembles paper), designspace (EST, Wasay & Idreos),
landscape (diversity, Fort et al. 2019), collegial (NTK design, Littwin et al. 2020). Stored predictions:
analyze, evaluate, report. The budget planner: count_params, flops_per_example, solve_width, memory_splits,
equivalents. Every name means one thing everywhere (docs/glossary.md); an old spelling of a keyword is
accepted for one release with a DeprecationWarning.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, TypeVar

from ensplit._version import __version__
from ensplit.errors import EnsplitError, renamed
from ensplit.experiments.collegial import CollegialConfig, CollegialResult, run_collegial
from ensplit.experiments.compare import CompareConfig, CompareResult, run_compare
from ensplit.experiments.designspace import DesignSpaceConfig, DesignSpaceResult, run_designspace
from ensplit.experiments.landscape import LandscapeConfig, LandscapeResult, run_landscape
from ensplit.experiments.predictions import AnalyzeResult, EvaluateResult
from ensplit.experiments.predictions import analyze as _analyze
from ensplit.experiments.predictions import evaluate as _evaluate
from ensplit.experiments.recommend import RecommendResult, run_recommend
from ensplit.experiments.recommend_plan import RecommendConfig
from ensplit.experiments.study import StudyResult, reanalyze, run_study
from ensplit.experiments.study_config import StudyConfig
from ensplit.models import count_params
from ensplit.models.scaling import equivalents, flops_per_example, memory_splits, solve_width
from ensplit.recipe import Recipe, build_settings
from ensplit.train.config import TrainConfig

_R = TypeVar("_R")


def _with_page(result: _R, out: str | Path | None, command: str | None) -> _R:
    """`result` after writing its page `out/report.html` (no page without `out`); `command` names the line on
    stderr that says where the page went (None: quiet). Experiments write no pages: this and the commands do."""
    if out is not None:
        from ensplit import reports  # matplotlib: only when a page is written, so `import ensplit` stays light

        reports.write(result, out, command)
    return result


def _settings(cls: type, table: str, config: Any, settings: dict[str, Any]) -> Any:
    if config is not None and settings:
        raise EnsplitError(f"give a {cls.__name__} or keyword settings, not both")
    return config if config is not None else build_settings(cls, table, settings)


def recommend(config: RecommendConfig | None = None, out: str | Path = "ensplit-recommend", *,
              progress: bool = True, report: bool = True, repair: bool = False, **settings: Any) -> RecommendResult:
    """The answer at a parameter budget: one wide network, a deep ensemble (how many members) or a sharing
    method? Every candidate's CNLL at the budget is predicted from cheap runs (with a 5–95% interval), the
    best is recommended, and it is verified at the budget. `ensplit.recommend(budget=80_000)`; settings: any
    recipe field or RecommendConfig field. Resumable; one folder serves every budget of one recipe; `repair`
    rebuilds a damaged index from the stored arrays."""
    result = run_recommend(_settings(RecommendConfig, "recommend", config, settings), out, progress=progress,
                           repair=repair)
    return _with_page(result, out if report else None, "recommend" if progress else None)


def study(config: StudyConfig | None = None, out: str | Path = "ensplit-study", *, progress: bool = True,
          report: bool = True, repair: bool = False, **settings: Any) -> StudyResult:
    """The memory-split study: pools at each width, CNLL(n, s), power laws, the optimal split per budget and
    its prediction. Resumable: rerun with the same settings and only missing networks are trained; `repair`
    rebuilds a damaged index from the stored arrays. Settings: any recipe field (`epochs=20`, `dataset=...`,
    `recipe=Recipe(...)`) or StudyConfig field."""
    result = run_study(_settings(StudyConfig, "study", config, settings), out, progress=progress, repair=repair)
    return _with_page(result, out if report else None, "study" if progress else None)


def compare(config: CompareConfig | None = None, out: str | Path | None = None, *, progress: bool = True,
            **settings: Any) -> CompareResult:
    """Parameter-sharing methods side by side at a width or a parameter `budget` (with `out`: a report page).
    Settings: any recipe field or CompareConfig field (`methods`, `members`, `budget`, ...)."""
    result = run_compare(_settings(CompareConfig, "compare", config, settings), out, progress=progress)
    return _with_page(result, out, "compare" if progress else None)


def designspace(config: DesignSpaceConfig | None = None, out: str | Path = "designspace-out", *,
                progress: bool = True, **settings: Any) -> DesignSpaceResult:
    """Single networks against width- and depth-equivalent ensembles over a grid; the EST per K."""
    result = run_designspace(_settings(DesignSpaceConfig, "designspace", config, settings), out, progress=progress)
    return _with_page(result, out, "designspace" if progress else None)


def landscape(config: LandscapeConfig | None = None, out: str | Path = "landscape", *, progress: bool = True,
              **settings: Any) -> LandscapeResult:
    """Trajectories of independent inits against subspace samplers and SWA (Fort et al.)."""
    result = run_landscape(_settings(LandscapeConfig, "landscape", config, settings), out, progress=progress)
    return _with_page(result, out, "landscape" if progress else None)


def collegial(config: CollegialConfig | None = None, out: str | Path | None = None, *, progress: bool = True,
              **settings: Any) -> CollegialResult:
    """The collegial-ensemble design (width n, multiplicity m) of a baseline from the NTK variance."""
    result = run_collegial(_settings(CollegialConfig, "collegial", config, settings), out, progress=progress)
    return _with_page(result, out, "collegial" if progress else None)


def analyze(inputs: list[str | Path], out: str | Path = "ensplit-analysis", **options: Any) -> AnalyzeResult:
    """The memory-split analysis of `.npz` pools made by any framework (one file per member size). Options:
    temperature ("before"/"after"), cnll_splits, predict_max_n, predict_pool, bootstrap, report."""
    options = renamed(options, {"splits": "cnll_splits"})
    known = [name for name in inspect.signature(_analyze).parameters if name not in ("inputs", "out")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise EnsplitError(f"unknown field {unknown[0]!r}; known: {', '.join(known)}")
    result = _analyze(inputs, out, **options)
    return _with_page(result, result.folder if options.get("report", True) else None, "analyze")


def evaluate(file: str | Path, cnll_splits: int = 5, seed: int = 0, **deprecated: Any) -> EvaluateResult:
    """Metrics of an `.npz` ensemble and of each member: accuracy, NLL, Brier, ECE, CNLL before/after
    (`cnll_splits` random halvings of test-time cross-validation; `splits=` is its deprecated name)."""
    given = renamed(deprecated, {"splits": "cnll_splits"})
    unknown = sorted(set(given) - {"cnll_splits"})
    if unknown:
        raise EnsplitError(f"unknown field {unknown[0]!r}; known: cnll_splits, seed")
    return _evaluate(file, given.get("cnll_splits", cnll_splits), seed)


def report(folder: str | Path) -> StudyResult:
    """Analyse an existing study folder again and rewrite its report (no training)."""
    result = reanalyze(folder)
    return _with_page(result, result.folder, "report")


__all__ = [
    "CollegialConfig", "CompareConfig", "DesignSpaceConfig", "EnsplitError", "LandscapeConfig", "Recipe",
    "RecommendConfig", "recommend",
    "StudyConfig", "TrainConfig", "__version__", "analyze", "collegial", "compare", "count_params", "designspace",
    "equivalents", "evaluate", "flops_per_example", "landscape", "memory_splits", "report", "solve_width", "study",
]
