"""The memory-split study as text: the summary `ensplit study`, `analyze` and `report` print for people."""

from __future__ import annotations

from typing import Any


def _predicted_cell(b: dict[str, Any]) -> str:
    if b["predicted_n"] is None:
        return f"{'-':>11} {'-':>6} {'-':>8}"
    spread = "" if b["predicted_n_range"] is None else "{}–{}".format(*b["predicted_n_range"])
    regret = "-" if b["predicted_regret"] is None else f"{b['predicted_regret']:+.4f}"
    return f"{b['predicted_n']:>4} {spread:>6} {b['predicted_width'] or '-':>6} {regret:>8}"


def _fit_line(name: str, fit: dict | None) -> str:
    if not fit or "a" not in fit:
        return f"  {name:<24} (too few points to fit)"
    return f"  {name:<24} a = {fit['a']:+.3f}  b = {fit['b']:.4f}  c = {fit['c']:.4f}  RMSE = {fit['rmse']:.2e}"


def _per_n(prediction: dict[str, Any]) -> str:
    """Range of the per-n RMSE over the repeats, beyond the fitted n."""
    per_n = prediction.get("rmse_per_n") or {}
    beyond = [r for n, r in zip(per_n.get("n", []), per_n.get("rmse", []), strict=True)
              if n > prediction["max_n"] and r is not None and r == r]
    if not beyond:
        return ""
    return f"; per n over {prediction['resample']} repeats {min(beyond):.4f}–{max(beyond):.4f}"


def _nll_lines(result: dict[str, Any]) -> list[str]:
    """Uncalibrated NLL, NLL at fixed τ and LE-NLL (absent from summaries made before they existed)."""
    if "nll_fits" not in result:
        return []
    nll = result["nll_fits"]
    lines = ["\nUncalibrated NLL (τ = 1) = c + b·m^a:"]
    lines += [_fit_line(f"in n (s = {e['params']:,})", e) for e in nll["n"]]
    lines.append(_fit_line("in s (n = 1)", nll["s"]))
    lines.append("  NLL_s of single networks: " + ", ".join(f"{v:.4f}" for v in nll["nll_s"])
                 + f" (rises with s: {'yes' if nll['nll_s_rises'] else 'no'}; CNLL_s rises: "
                 f"{'yes' if nll['cnll_s_rises'] else 'no'})")
    optima = [o for o in result["temperature_optimum"] if o["tau"] is not None]
    if optima:
        lines.append(f"\nNLL at fixed τ ({result['temperature']} averaging): τ* = argmin over the grid of the "
                     "asymptote c(τ)")
        lines += [f"  s = {o['params']:>9,}: τ* = {o['tau']:.3f}, c(τ*) = {o['c']:.4f}"
                  + (" (at the edge of the τ grid)" if o["at_grid_edge"] else "") for o in optima]
    lines.append("\nLE-NLL − CNLL per n (min over τ outside vs inside the mean over ensembles):")
    for e in result["le_nll"]:
        lines.append(f"  s = {e['params']:>9,}: " + " ".join(f"{d:+.5f}" for d in e["le_nll_minus_cnll"]))
    return lines


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
    units = result.get("fit_objective") or {"objective": "nll", "rmse_units": "nats (NLL units)"}
    lines.append(f"\nPower laws CNLL = c + b·m^a (objective {units['objective']}, RMSE in {units['rmse_units']}):")
    for entry in result["power_laws"]["n"]:
        lines.append(_fit_line(f"in n (s = {entry['params']:,})", entry))
    lines.append(_fit_line("in s (n = 1)", result["power_laws"]["s"]))
    lines.append(_fit_line("in B (lower envelope)", result["power_laws"]["B"]))
    lines.extend(_nll_lines(result))
    if result["prediction"]:
        lines.append(f"\nPrediction from small ensembles (fit on n ≤ {result['prediction'][0]['max_n']}):")
    else:
        lines.append("\nPrediction from small ensembles: none (every pool has fewer than 3 networks, too few to fit "
                     "a power law in n)")
    for p in result["prediction"]:
        rmse = "-" if p["rmse_vs_measured"] is None else f"{p['rmse_vs_measured']:.4f}"
        lines.append(f"  s = {p['params']:>9,}: from {p['fit_on_networks']} networks, "
                     f"RMSE vs measured larger n = {rmse}{_per_n(p)}")
    if result["pool_rule"]:
        lines.append(f"\nPool rule: {result['pool_rule']['rule']}, {result['pool_rule']['formula']}")
    if result["failed_networks"]:
        lines.append(f"\n{result['failed_networks']} network(s) diverged and were left out.")
    if result["folder"]:
        files = "results.sqlite, config.toml" + (", report.html" if result.get("report") else "")
        lines.append(f"\nStudy folder: {result['folder']} ({files})")
    return "\n".join(lines)
