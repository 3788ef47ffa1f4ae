"""`ensplit recommend`: a parameter budget in, the best way to spend it out (predicted, with intervals, checked)."""

from __future__ import annotations

import argparse
from typing import Any

from ensplit.commands._options import experiment_command
from ensplit.experiments.recommend import DEFAULT_OUT, run_recommend
from ensplit.experiments.recommend_plan import RecommendConfig
from ensplit.reports.cost_text import cost_line

NAME = "recommend"
HELP = ("given a parameter budget: one wide network, a deep ensemble of thinner ones (how many), or a "
        "parameter-sharing ensemble? Predicted from cheap runs, with intervals, and verified")


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-verify", dest="setting__own.verify", action="store_const", const="false",
                        help="skip the verification runs at the budget (same as --verify false)")
    parser.add_argument("--no-report", action="store_true", help="skip writing report.html")
    parser.add_argument("--repair", action="store_true", help="rebuild a damaged results.sqlite from the stored "
                        "arrays and their sidecars, then go on (see docs/what-happens-when.md)")


add_arguments, settings, run = experiment_command(RecommendConfig, "recommend", run_recommend, DEFAULT_OUT, _extra)


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _at(settings: dict[str, float] | None) -> str:
    """" at lr …, weight decay …" for a tuned family's settings; "" untuned."""
    return "" if not settings else f" at lr {settings['lr']:g}, weight decay {settings['weight_decay']:g}"


def render(result: dict[str, Any]) -> str:
    best, rival = result["recommendation"], result["runner_up"]
    low, high = best["interval"]
    flops = "" if result.get("flops_budget") is None else f" and {result['flops_budget']:,} FLOPs per example"
    lines = [f"Recommendation at {result['budget']:,} parameters{flops}: {best['name']}{_at(best.get('settings'))} — "
             f"predicted CNLL {best['predicted_cnll']:.4f} [{low:.4f}, {high:.4f}]"
             + ("" if rival is None else f"; runner-up {rival['name']} ({rival['predicted_cnll']:.4f}), "
                f"{'separated' if result['separated'] else 'not separated'} by the 5–95% intervals")]
    head = (f"{'rank':>4}  {'candidate':<24} {'params':>10} {'predicted':>9} {'5%':>7} {'95%':>7} {'measured':>8} "
            f"{'FLOPs/ex':>11} {'s/epoch':>8} {'ms/ex':>7}")
    lines += ["", head, "-" * len(head)]
    for rank, c in enumerate(result["candidates"], 1):
        lines.append(f"{rank:>4}  {c['name']:<24} {c['params']:>10,} {c['predicted_cnll']:>9.4f} "
                     f"{c['interval'][0]:>7.4f} {c['interval'][1]:>7.4f} {_number(c['measured_cnll']):>8} "
                     f"{c['flops_per_example']:>11,} {c['seconds_per_epoch']:>8.3f} "
                     f"{c['inference_ms_per_example']:>7.4f}")
    for c in result["dropped"]:
        lines.append(f"   -  {c['name']:<24} dropped: {c['flops_per_example']:,} FLOPs per example even at width 1 "
                     f"> flops_budget {result['flops_budget']:,}")
    if result.get("tuning"):
        target = "the budget" if result.get("flops_budget") is None else "its largest candidate within the FLOPs"
        lines += ["", f"Each family's lr and weight decay, chosen by --tune on validation and carried to {target} "
                  "(train a candidate at its family's): "
                  + "; ".join(f"{family}{_at(chosen)}" for family, chosen in result["tuning"]["settings"].items())]
    verification = result["verification"]
    if verification:
        inside = verification["within_interval"]
        lines += ["", f"Verified at the budget with fresh seeds: {best['name']} measured "
                  f"{_number(verification['measured_cnll'])} (predicted {verification['predicted_cnll']:.4f}, "
                  f"{'within' if inside else 'outside'} the interval); single network measured "
                  f"{_number(verification['single_measured_cnll'])}; measured advantage over the single network "
                  f"{_number(verification['measured_advantage'], 4)}."]
    if result.get("cost"):
        lines += ["", cost_line(result["cost"], len(result["candidates"]))]
    lines.append(f"\n{result['trained_jobs']} training job(s) run, {result['seconds']:.0f} s; folder {result['folder']}"
                 + (f", report {result['report']}" if result["report"] else ""))
    return "\n".join(lines)
