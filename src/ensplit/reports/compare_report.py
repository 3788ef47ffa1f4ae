"""The report page of `ensplit compare`: the table of methods and the budget and member sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ensplit.reports.compare_figures import metric_vs
from ensplit.reports.html import Section, epochs, write_report

HEADERS = {"seconds_per_epoch": "s/epoch (train)", "member_accuracy": "member accuracy", "ece": "ECE (%)",
           "nll": "NLL", "cnll": "CNLL", "flops_per_example": "FLOPs/example"}


def _table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows for the page: readable column names (ECE marked as a percentage), without the internals."""
    return [{HEADERS.get(k, k.replace("_", " ")): v for k, v in row.items() if k != "info"} for row in rows]


def write_compare_report(directory: Path, result: Any) -> Path:
    """`directory/report.html` from a `CompareResult`."""
    config, recipe = result.config, result.config.recipe
    budget = f"{config.budget:,} parameters" if config.budget else f"width {config.width}"
    train = recipe.train
    sections = [Section(f"Methods at {budget}, {config.members} members",
                        f"{recipe.family} on {recipe.dataset}, {epochs(train.epochs)}, {train.optimizer} "
                        f"lr {train.lr}, "
                        f"{train.schedule} schedule, weight decay {train.weight_decay}. Metrics of the ensemble "
                        "(probabilities averaged); CNLL by test-time cross-validation; member accuracy: mean over "
                        "single members; FLOPs per test example (all members); corrupted: mean over corruptions "
                        "and severities.", table=_table(result.rows))]
    if result.budget_rows:
        sections.append(Section(
            "Accuracy and CNLL against parameters",
            "Every method sized to each budget (widest network that fits); MixtureEnsembles keep the backbone "
            "width and take the budget as their template-bank knob (the MixtureEnsembles paper, Figure 3 left).",
            figures=[(metric_vs(result.budget_rows, "params", "accuracy", "accuracy vs parameters", True), "accuracy"),
                     (metric_vs(result.budget_rows, "params", "cnll", "CNLL vs parameters", True), "CNLL")],
            table=_table(result.budget_rows)))
    if result.member_rows:
        sections.append(Section(
            "Accuracy and CNLL against the number of members",
            "The same budget (or width) with more or fewer members (the MixtureEnsembles paper, Figure 3 right).",
            figures=[(metric_vs(result.member_rows, "members", "accuracy", "accuracy vs members"), "accuracy"),
                     (metric_vs(result.member_rows, "members", "cnll", "CNLL vs members"), "CNLL")],
            table=_table(result.member_rows)))
    return write_report(directory / "report.html", "ensplit compare", sections,
                        subtitle=f"{recipe.family} on {recipe.dataset}; methods {', '.join(config.methods)}")
