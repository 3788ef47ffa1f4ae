"""`ensplit landscape`: trajectories, weight/function-space similarity, t-SNE, interpolation, subspace
sampling and SWA (Fort et al. 2019) on one family, written as a report page with a JSON summary. Each init is a
stored run in `--out`: a killed run resumes, a finished one trains nothing."""

from __future__ import annotations

from typing import Any

from ensplit.commands._options import experiment_command
from ensplit.experiments.landscape import LandscapeConfig, run_landscape

NAME = "landscape"
HELP = "diversity and loss-landscape analysis of independent inits vs subspace samples and SWA (Fort et al.)"


add_arguments, settings, run = experiment_command(LandscapeConfig, "landscape", run_landscape, "landscape")


def render(result: dict[str, Any]) -> str:
    cos, dis = result["cosine"], result["disagreement"]
    lines = [
        f"{result['family']} width {result['width']}, {result['inits']} inits: report {result['out']}/report.html",
        f"cosine        within {cos['within']:.3f}  across {cos['across']:.3f}  final solutions "
        f"{cos['across_final']:.3f}",
        f"disagreement  within {dis['within']:.3f}  across {dis['across']:.3f}  final solutions "
        f"{dis['across_final']:.3f}",
        f"{'method':<20} {'mean acc':>9} {'mean div':>9} {'div @ inits acc':>16} {'acc @ inits div':>16}",
        f"{'independent inits':<20} {result['independent']['mean_accuracy']:>9.3f} "
        f"{result['independent']['mean_normalized_diversity']:>9.3f} "
        f"{result['independent']['mean_normalized_diversity']:>16.3f} {result['independent']['mean_accuracy']:>16.3f}",
    ]
    for name, v in result["samplers"].items():
        at = f"{v['diversity_at_independent_accuracy']:.3f}" + ("" if v["reaches_independent_accuracy"] else "*")
        acc_at = f"{v['accuracy_at_independent_diversity']:.3f}" + ("" if v["reaches_independent_diversity"] else "*")
        lines.append(f"{name:<20} {v['mean_accuracy']:>9.3f} {v['mean_normalized_diversity']:>9.3f} {at:>16} "
                     f"{acc_at:>16}")
    ens = result["ensembles"]
    for name in [k for k in ens if k != "sizes"]:
        lines.append(f"{name} ensembles n={ens['sizes'][-1]}: accuracy {ens[name]['accuracy'][-1]:.3f}, "
                     f"NLL {ens[name]['nll'][-1]:.3f}, CNLL {ens[name]['cnll'][-1]:.3f}")
    shift = result.get("shift") or {}
    for name, curves in (shift.get("mean") or {}).items():
        lines.append(f"{name} ensembles n={shift['sizes'][-1]} under shift (mean over corrupted test sets): accuracy "
                     f"{curves['accuracy'][-1]:.3f}, NLL {curves['nll'][-1]:.3f}, CNLL {curves['cnll'][-1]:.3f}")
    if any(not (v["reaches_independent_accuracy"] and v["reaches_independent_diversity"])
           for v in result["samplers"].values()):
        lines.append("* never as accurate (diverse) as the independent inits: value at its most accurate (diverse) "
                     "scale")
    return "\n".join(lines)
