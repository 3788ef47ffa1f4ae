"""The memory-split study as text: the summary `ensplit study`, `analyze` and `report` print for people."""

from __future__ import annotations

from typing import Any


def _predicted_cell(b: dict[str, Any]) -> str:
    if b["predicted_n"] is None:
        return f"{'-':>11} {'-':>6} {'-':>8}"
    spread = "" if b["predicted_n_range"] is None else "{}–{}".format(*b["predicted_n_range"])
    regret = "-" if b["predicted_regret"] is None else f"{b['predicted_regret']:+.4f}"
    return f"{b['predicted_n']:>4} {spread:>6} {b['predicted_width'] or '-':>6} {regret:>8}"


def render_summary(result: dict[str, Any]) -> str:
    """Human-readable summary (stdout of `ensplit study` without --json)."""
    lines = [f"Optimal memory split per budget (CNLL, temperature {result['temperature']} averaging):",
             f"{'budget B':>10} {'best n':>7} {'width':>6} {'CNLL':>8} {'acc':>7} | {'single CNLL':>11} "
             f"{'acc':>7} {'advantage':>9} | {'predicted n':>11} {'width':>6} {'regret':>8}"]
    for b in result["budgets"]:
        single = ("-", "-", "-") if b["single_cnll"] is None else (
            f"{b['single_cnll']:.4f}", f"{b['single_accuracy']:.4f}", f"{b['advantage']:+.4f}")
        lines.append(f"{b['budget']:>10,} {b['best_n']:>7} {b['best_width'] or '-':>6} {b['best_cnll']:>8.4f} "
                     f"{b['best_accuracy']:>7.4f} | {single[0]:>11} {single[1]:>7} {single[2]:>9} | "
                     f"{_predicted_cell(b)}")
    lines.append("(advantage > 0: the best split beats one network of the whole budget; predicted n: from the "
                 "first networks of each pool, with its 5–95% range over resampled pools; regret: measured CNLL "
                 "of the predicted split minus the best)")
    lines.append("\nPower laws CNLL = c + b·m^a:")

    def fmt(name: str, fit: dict | None) -> str:
        if not fit or "a" not in fit:
            return f"  {name:<24} (too few points to fit)"
        return f"  {name:<24} a = {fit['a']:+.3f}  b = {fit['b']:.4f}  c = {fit['c']:.4f}  RMSE = {fit['rmse']:.2e}"

    for entry in result["power_laws"]["n"]:
        lines.append(fmt(f"in n (s = {entry['params']:,})", entry))
    lines.append(fmt("in s (n = 1)", result["power_laws"]["s"]))
    lines.append(fmt("in B (lower envelope)", result["power_laws"]["B"]))
    lines.append("\nPrediction from small ensembles (fit on n ≤ "
                 f"{result['prediction'][0]['max_n'] if result['prediction'] else '-'}):")
    for p in result["prediction"]:
        rmse = "-" if p["rmse_vs_measured"] is None else f"{p['rmse_vs_measured']:.4f}"
        lines.append(f"  s = {p['params']:>9,}: from {p['fit_on_networks']} networks, "
                     f"RMSE vs measured larger n = {rmse}")
    if result["failed_networks"]:
        lines.append(f"\n{result['failed_networks']} network(s) diverged and were left out.")
    if result["folder"]:
        lines.append(f"\nStudy folder: {result['folder']} (results.sqlite, config.toml, report.html)")
    return "\n".join(lines)
