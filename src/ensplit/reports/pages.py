"""`write(result, folder)`: the report page of an experiment's result, chosen by the result's type name.

Experiments return typed results and write no pages; the command layer and the front door call `write`. The
registry is keyed by the result class's name, so this floor never imports the experiments (import-linter
keeps it so). Each page module is imported when its page is written, which keeps `import ensplit.reports`
(and the CLI's start) light.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ensplit.errors import EnsplitError

PAGE = "report.html"


def _study(result: Any, folder: Path) -> Path:
    from ensplit.reports.study_report import write_study_report

    return write_study_report(result.analysis, folder / PAGE, result.config)


def _analyze(result: Any, folder: Path) -> Path:
    from ensplit.reports.study_report import write_study_report

    return write_study_report(result.analysis, folder / PAGE, title="ensplit memory-split analysis of .npz pools")


def _compare(result: Any, folder: Path) -> Path:
    from ensplit.reports.compare_report import write_compare_report

    return write_compare_report(folder, result)


def _designspace(result: Any, folder: Path) -> Path:
    from ensplit.reports.design_space_figures import report_sections
    from ensplit.reports.html import write_report

    config = result.config
    return write_report(folder / PAGE, f"Design space: {config.recipe.family}, K = "
                        f"{', '.join(map(str, config.members))}",
                        report_sections(result.records, result.est, result.memory_method, result.notes),
                        subtitle=" ".join(result.notes[:1]))


def _landscape(result: Any, folder: Path) -> Path:
    from ensplit.reports.html import write_report
    from ensplit.reports.landscape_figures import landscape_sections

    return write_report(folder / PAGE, "Loss landscape: independent inits vs subspace samples",
                        landscape_sections(result), subtitle=f"ensplit landscape, {result.summary['family']} width "
                        f"{result.summary['width']}")


def _collegial(result: Any, folder: Path) -> Path:
    from ensplit.reports.collegial_figures import write_collegial_report

    return write_collegial_report(folder, result.baseline, result.design, result.fit, result.values)


def _recommend(result: Any, folder: Path) -> Path:
    from ensplit.reports.recommend_report import write_recommend_report

    return write_recommend_report(folder / PAGE, result)


# result type name -> (page writer, a line for stderr before a page that takes a while)
WRITERS: dict[str, tuple[Callable[[Any, Path], Path], str]] = {
    "StudyResult": (_study, ""),
    "AnalyzeResult": (_analyze, ""),
    "CompareResult": (_compare, ""),
    "DesignSpaceResult": (_designspace, ""),
    "LandscapeResult": (_landscape, "[landscape] writing the report"),
    "CollegialResult": (_collegial, "writing the report (runs the ensemble-NTK convergence check) ..."),
    "RecommendResult": (_recommend, ""),
}


def write(result: Any, folder: str | Path, command: str | None = None) -> Path:
    """Write `folder/report.html` from `result` (a typed result of an experiment) and return its path.

    The path is recorded on the result (`result.report`) and, for a result that keeps its own record file
    (a `save(folder)` method: compare's and designspace's results.json), in that file too. With `command`,
    one line on stderr says where the page went (`ensplit study: report written to DIR/report.html`)."""
    name = type(result).__name__
    if name not in WRITERS:
        raise EnsplitError(f"no report page for {name}; pages exist for {', '.join(sorted(WRITERS))}")
    writer, note = WRITERS[name]
    folder = Path(folder)
    if command and note:
        print(note, file=sys.stderr, flush=True)
    path = writer(result, folder)
    result.report = path
    save = getattr(result, "save", None)
    if callable(save):
        save(folder)
    if command:
        print(f"ensplit {command}: report written to {path}", file=sys.stderr, flush=True)
    return path
