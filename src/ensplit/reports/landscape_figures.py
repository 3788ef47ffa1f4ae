"""Figures of the loss-landscape analysis (Fort et al. 2019), one function per figure, arrays in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from ensplit.reports.html import Section, epochs

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive",
           "tab:cyan", "tab:gray")


def _color(i: int) -> str:
    return _COLORS[i % len(_COLORS)]


def checkpoint_matrix_figure(matrix: np.ndarray, inits: Sequence[int], title: str, label: str,
                             cmap: str = "viridis") -> Figure:
    """A heatmap of a `[S, S]` checkpoint-by-checkpoint matrix, with lines between trajectories."""
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap=cmap, interpolation="nearest")
    fig.colorbar(image, ax=ax, label=label)
    inits = np.asarray(inits)
    bounds = np.flatnonzero(np.diff(inits)) + 0.5
    for b in bounds:
        ax.axhline(b, color="white", lw=0.8)
        ax.axvline(b, color="white", lw=0.8)
    centers = [np.flatnonzero(inits == k).mean() for k in np.unique(inits)]
    ax.set_xticks(centers, [f"init {k}" for k in np.unique(inits)], rotation=45, fontsize=8)
    ax.set_yticks(centers, [f"init {k}" for k in np.unique(inits)], fontsize=8)
    ax.set_title(title)
    return fig


def tsne_figure(embedding: np.ndarray, inits: Sequence[int], epochs: Sequence[int]) -> Figure:
    """t-SNE of checkpoint predictions: one colour per init, a line along each trajectory, size ∝ epoch."""
    fig = Figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot()
    inits, epochs = np.asarray(inits), np.asarray(epochs, dtype=float)
    sizes = 12 + 60 * (epochs - epochs.min()) / max(np.ptp(epochs), 1.0)
    for k in np.unique(inits):
        sel = np.flatnonzero(inits == k)
        ax.plot(embedding[sel, 0], embedding[sel, 1], color=_color(k), lw=0.8, alpha=0.6)
        ax.scatter(embedding[sel, 0], embedding[sel, 1], s=sizes[sel], color=_color(k), label=f"init {k}",
                   edgecolor="black", linewidth=0.3)
    ax.set_title("t-SNE of checkpoint predictions")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="best")
    return fig


def interpolation_figure(curves: Mapping[str, object]) -> Figure:
    """Test accuracy and loss along each path (`PathCurve`s by name), train loss dashed."""
    fig = Figure(figsize=(9.5, 3.6))
    ax_acc, ax_loss = fig.subplots(1, 2)
    for i, (name, c) in enumerate(curves.items()):
        ax_acc.plot(c.t, c.test_accuracy, "-o", ms=3, color=_color(i), label=name)
        ax_loss.plot(c.t, c.test_loss, "-o", ms=3, color=_color(i), label=f"{name} (test)")
        ax_loss.plot(c.t, c.train_loss, "--", color=_color(i), label=f"{name} (train)")
    ax_acc.set_xlabel("t (0 = init A, 1 = init B)")
    ax_acc.set_ylabel("test accuracy")
    ax_loss.set_xlabel("t (0 = init A, 1 = init B)")
    ax_loss.set_ylabel("cross-entropy (nats)")
    ax_acc.legend(fontsize=8)
    ax_loss.legend(fontsize=7)
    fig.suptitle("Paths between two independently trained solutions")
    fig.tight_layout()
    return fig


def diversity_accuracy_figure(sweeps: Sequence[object], independent_accuracy: np.ndarray,
                              independent_diversity: np.ndarray, reference_accuracy: float) -> Figure:
    """Fort et al. Fig. 5: normalised diversity vs accuracy of samples around one solution (one colour per
    sampler, per-scale means joined) against independently trained solutions (black stars); the right
    panel zooms on the accuracy range of the independent solutions."""
    fig = Figure(figsize=(9.4, 4.0))
    axes = fig.subplots(1, 2)
    every = np.concatenate([np.asarray(independent_accuracy, float).ravel(),
                            *(np.asarray(s.accuracy, float).ravel() for s in sweeps)])
    pad = 0.01 * max(float(np.ptp(every)), 1e-3)
    # the zoom: just below the independent solutions' accuracy, never wider than the data themselves
    low = max(min(float(np.min(independent_accuracy)), reference_accuracy) - 0.08, float(np.min(every)) - pad)
    high = min(max(float(np.max(independent_accuracy)), reference_accuracy) + 0.02, float(np.max(every)) + pad)
    for ax, zoom in zip(axes, (False, True), strict=True):
        for i, sweep in enumerate(sweeps):
            acc, div = np.asarray(sweep.accuracy), np.asarray(sweep.diversity)
            ax.scatter(acc.ravel(), div.ravel(), s=6, alpha=0.25, color=_color(i))
            ax.plot(acc.mean(1), div.mean(1), "-o", ms=3, color=_color(i), label=sweep.name)
        ax.scatter(independent_accuracy, independent_diversity, marker="*", s=120, color="black",
                   label="independent inits", zorder=5)
        ax.axvline(reference_accuracy, color="gray", lw=0.8, ls=":")
        ax.set_xlabel("test accuracy")
        ax.set_ylim(bottom=0)
        if zoom:
            ax.set_xlim(low, high)
            ax.set_ylim(0, 1.6 * float(np.max(independent_diversity)))
            ax.set_title("zoom: the independent solutions' accuracy range")
        else:
            ax.set_ylabel("normalised diversity (disagr. / error of ref)")
            ax.set_title("Diversity vs accuracy around one solution")
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ensemble_curves_figure(sizes: Sequence[int], curves: Mapping[str, Mapping[str, Sequence[float]]],
                           metrics: Sequence[str] = ("accuracy", "nll", "cnll")) -> Figure:
    """Metrics vs ensemble size, one line per kind of ensemble (e.g. plain vs SWA members)."""
    fig = Figure(figsize=(9.4, 3.2))
    axes = fig.subplots(1, len(metrics))
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (name, values) in enumerate(curves.items()):
            ax.plot(sizes, values[metric], "-o", ms=4, color=_color(i), label=name)
        ax.set_xlabel("ensemble size n")
        ax.set_ylabel(metric.upper() if metric != "accuracy" else "test accuracy")
        ax.set_xticks(list(sizes))
    axes[0].legend(fontsize=8)
    fig.suptitle("Ensembles of independent solutions vs ensembles of SWA solutions")
    fig.tight_layout()
    return fig


def shift_figure(shift: Mapping[str, object], clean: Mapping[str, Mapping[str, Sequence[float]]],
                 metrics: Sequence[str] = ("accuracy", "nll", "cnll")) -> Figure:
    """Dataset shift. Top: metrics vs ensemble size averaged over every corrupted test set (solid), the clean
    test set dashed. Bottom: metrics vs severity (averaged over corruptions) for one member and the largest
    ensemble of each pool."""
    sizes, mean, by_severity = shift["sizes"], shift["mean"], shift["by_severity"]
    fig = Figure(figsize=(9.4, 6.6))  # the page is 1100 px wide
    axes = fig.subplots(2, len(metrics))
    severities = [int(v) for v in by_severity]
    for col, metric in enumerate(metrics):
        top, bottom = axes[0, col], axes[1, col]
        name = metric.upper() if metric != "accuracy" else "test accuracy"
        for i, (pool, values) in enumerate(mean.items()):
            top.plot(sizes, values[metric], "-o", ms=4, color=_color(i), label=f"{pool} (corrupted)")
            if pool in clean:
                top.plot(sizes, clean[pool][metric], "--", color=_color(i), alpha=0.6, label=f"{pool} (clean)")
            for n_index, style in ((0, ":s"), (-1, "-o")):
                ys = [by_severity[str(v)][pool][metric][n_index] for v in severities]
                bottom.plot(severities, ys, style, ms=4, color=_color(i), label=f"{pool}, n = {sizes[n_index]}")
        top.set_xlabel("ensemble size n")
        top.set_xticks(list(sizes))
        top.set_ylabel(name)
        bottom.set_xlabel("corruption severity")
        bottom.set_xticks(severities)
        bottom.set_ylabel(name)
    fig.suptitle("SWA against ensembles under dataset shift (mean over corruptions)")
    fig.tight_layout(rect=(0, 0.05, 1, 0.92), h_pad=2.0)
    for row, loc, y in ((axes[0], "center", 0.925), (axes[1], "lower center", 0.0)):  # clear of the curves
        fig.legend(*row[0].get_legend_handles_labels(), loc=loc, bbox_to_anchor=(0.5, y), ncol=4, fontsize=7,
                   frameon=False)
    return fig


def shift_rows(shift: Mapping[str, object]) -> list[dict[str, object]]:
    """One row per corruption (averaged over severities) and pool: metrics of one member and the largest ensemble."""
    sizes = shift["sizes"]
    groups = {**shift["by_corruption"], "all corruptions": shift["mean"]}
    return [{"corruption": c, "members": pool,
             **{f"{m} (n={n})": values[m][i] for m in ("accuracy", "nll", "cnll")
                for i, n in ((0, sizes[0]), (len(sizes) - 1, sizes[-1]))}}
            for c, pools in groups.items() for pool, values in pools.items()]


def trajectory_similarity_figure(epochs: Sequence[int], cosine_to_final: np.ndarray,
                                 disagreement_to_final: np.ndarray) -> Figure:
    """Along each trajectory: cosine and disagreement of every checkpoint with that trajectory's final one."""
    fig = Figure(figsize=(9.5, 3.4))
    ax_cos, ax_dis = fig.subplots(1, 2)
    for k in range(cosine_to_final.shape[0]):
        ax_cos.plot(epochs, cosine_to_final[k], "-o", ms=3, color=_color(k), label=f"init {k}")
        ax_dis.plot(epochs, disagreement_to_final[k], "-o", ms=3, color=_color(k))
    ax_cos.set_xlabel("epoch")
    ax_cos.set_ylabel("cosine with the final checkpoint")
    ax_dis.set_xlabel("epoch")
    ax_dis.set_ylabel("disagreement with the final checkpoint")
    for ax in (ax_cos, ax_dis):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))  # 0.99999, not "1e-5 + 9.999e-1"
    ax_cos.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _sampler_rows(s: Mapping[str, Any]) -> list[dict[str, object]]:
    """The subspace table: independent inits, then each sampler's means and its diversity (accuracy) where it
    matches the inits' accuracy (diversity), from a landscape summary `s`."""
    rows = [{"method": "independent inits", "mean accuracy": s["independent"]["mean_accuracy"],
             "mean normalised diversity": s["independent"]["mean_normalized_diversity"],
             "diversity at inits' accuracy": s["independent"]["mean_normalized_diversity"],
             "accuracy at inits' diversity": s["independent"]["mean_accuracy"]}]
    for name, v in s["samplers"].items():
        rows.append({"method": name, "mean accuracy": v["mean_accuracy"],
                     "mean normalised diversity": v["mean_normalized_diversity"],
                     "diversity at inits' accuracy": v["diversity_at_independent_accuracy"]
                     if v["reaches_independent_accuracy"] else f"never that accurate "
                     f"({v['diversity_at_independent_accuracy']:.3g} at its best)",
                     "accuracy at inits' diversity": v["accuracy_at_independent_diversity"]
                     if v["reaches_independent_diversity"] else f"never that diverse "
                     f"({v['accuracy_at_independent_diversity']:.3g} at its most)"})
    return rows


def _ensemble_rows(result: object) -> list[dict[str, object]]:
    """The ensembles table: accuracy and CNLL of one member and of the largest ensemble, per pool."""
    sizes = result.ensemble_sizes
    return [{"members": name, **{f"{m} (n={n})": values[m][i] for m in ("accuracy", "cnll")
                                 for i, n in enumerate(sizes) if n in (1, sizes[-1])}}
            for name, values in result.ensemble_curves.items()]


def _shift_section(result: object) -> Section:
    """SWA against ensembles on the corrupted test sets (a result with a `shift` summary)."""
    severities = list(result.shift["by_severity"])
    return Section(
        "Weight averaging against ensembles under dataset shift",
        f"The same SWA and independent solutions on {len(result.shift['sets'])} corrupted test sets ("
        + ", ".join(result.shift["by_corruption"]) + f" at severities {severities[0]}–{severities[-1]},"
        " the sets `ensplit compare` uses). Ensembles average member probabilities; CNLL by test-time "
        "cross-validation on each corrupted set.",
        figures=[(shift_figure(result.shift, result.ensemble_curves),
                  "Top: mean over every corrupted set (clean test set dashed). Bottom: by severity.")],
        table=shift_rows(result.shift))


def landscape_sections(result: object) -> list[Section]:
    """The report page of `ensplit landscape` from a `LandscapeResult`."""
    s = result.summary
    cos, dis = s["cosine"], s["disagreement"]
    sizes = result.ensemble_sizes
    params = s.get("params", s.get("parameters"))  # "parameters": a summary of an older release
    sections = [
        Section("Setup", f"{s['family']} width {s['width']} ({params:,} parameters), {s['inits']} random "
                f"inits, {epochs(s['epochs'])} plus a {s['tail_epochs']}-epoch constant-rate tail, "
                f"{s['checkpoints_per_init']} checkpoints per init, on {s['dataset']}. Batch norm: "
                f"{s['batch_norm']}. Solution test accuracies: "
                + ", ".join(f"{a:.3f}" for a in s["solution_test_accuracy"]) + "."),
        Section("Weight space and function space along trajectories",
                f"Mean cosine similarity within trajectories {cos['within']:.3f}, across {cos['across']:.3f} "
                f"(final solutions {cos['across_final']:.3f}). Mean disagreement within {dis['within']:.3f}, "
                f"across {dis['across']:.3f} (final solutions {dis['across_final']:.3f}).",
                figures=[(checkpoint_matrix_figure(result.cosine, result.inits, "Weight space", "cosine"),
                          "Cosine similarity of flattened parameters, all checkpoints (init-major, by epoch)."),
                         (checkpoint_matrix_figure(result.disagreement, result.inits, "Function space",
                                                   "disagreement", cmap="magma"),
                          "Fraction of test predictions that differ between two checkpoints."),
                         (tsne_figure(result.tsne, result.inits, result.epochs),
                          "t-SNE of the checkpoints' test-set probability vectors; marker size grows with epoch."),
                         (trajectory_similarity_figure(result.trajectory_epochs, result.cosine_to_final,
                                                       result.disagreement_to_final),
                          "Similarity of each checkpoint to its own trajectory's last checkpoint.")]),
        Section("Interpolation between two solutions",
                "Straight line (and a fitted quadratic Bézier curve) in parameter space between the solutions "
                "of init 0 and init 1. " + ("Batch-norm statistics are recomputed on the training inputs at "
                                            "every point." if s["batch_norm"] != "none in this family" else
                                            "The family has no batch norm; the endpoints are the two models."),
                figures=[(interpolation_figure(result.paths), "Accuracy and loss along the paths.")]),
        Section("Subspace sampling vs independent inits",
                "Networks sampled around init 0's solution at increasing scale, against the other independently "
                "trained solutions. Diversity is normalised by the reference's error.",
                figures=[(diversity_accuracy_figure(result.sweeps, result.independent_accuracy,
                                                    result.independent_diversity, result.reference_accuracy),
                          "Faint dots: single samples; lines: per-scale means; stars: independent solutions.")],
                table=_sampler_rows(s)),
        Section("Weight averaging within modes, ensembling across modes",
                "SWA averages each init's tail checkpoints; ensembles average member probabilities over up to "
                "20 subsets of the inits per size.",
                figures=[(ensemble_curves_figure(sizes, result.ensemble_curves), "Test metrics vs ensemble size.")],
                table=_ensemble_rows(result)),
    ]
    if result.shift:
        sections.append(_shift_section(result))
    return sections
