"""All landscape analyses of one set of trajectories, and the summary numbers `ensplit landscape` prints."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ensplit.analysis.interpolation import PathCurve, bezier_interpolation, linear_interpolation
from ensplit.analysis.landscape import (
    SamplerSweep,
    accuracy_at_diversity,
    checkpoint_cosine,
    checkpoint_disagreement,
    checkpoint_log_probs,
    diversity_at_accuracy,
    ensemble_size_curves,
    independent_points,
    sweep_sampler,
    to_final,
    tsne_embedding,
    within_across,
)
from ensplit.analysis.subspace import DiagonalGaussian, DropoutSampler, LowRankGaussian, random_directions
from ensplit.analysis.weight_averaging import swa_state
from ensplit.analysis.weights import flatten_state, flatten_states, has_batch_norm, parameter_names
from ensplit.data.dataset import Dataset
from ensplit.metrics import accuracy, mean_pairwise_kl

if TYPE_CHECKING:  # the trajectories are the training stage's product, read like a store
    from ensplit.study.trajectories import Trajectories


@dataclass
class LandscapeResult:
    """Arrays behind every figure, plus `summary` (JSON-able)."""

    inits: list[int]
    epochs: list[int]
    cosine: np.ndarray
    disagreement: np.ndarray
    tsne: np.ndarray
    cosine_to_final: np.ndarray
    disagreement_to_final: np.ndarray
    trajectory_epochs: list[int]
    paths: dict[str, PathCurve]
    sweeps: list[SamplerSweep]
    reference_accuracy: float
    independent_accuracy: np.ndarray
    independent_diversity: np.ndarray
    ensemble_sizes: list[int]
    ensemble_curves: dict[str, dict[str, list[float]]]
    summary: dict[str, Any] = field(default_factory=dict)


def _log(message: str) -> None:
    print(f"[landscape] {message}", file=sys.stderr, flush=True)


def _samplers(trajectories: Trajectories, template: torch.nn.Module, rank: int, seed: int) -> list[Any]:
    names = parameter_names(template)
    center = flatten_state(trajectories.solutions()[0], names)
    samplers: list[Any] = [DropoutSampler.for_model(center, template)]
    tail = trajectories.tail(0)
    if len(tail) >= 2:
        tail_vectors = flatten_states(tail, names)
        samplers += [DiagonalGaussian.from_tail(center, tail_vectors),
                     LowRankGaussian.from_tail(center, tail_vectors, rank)]
    samplers.append(random_directions(center, rank, torch.Generator().manual_seed(seed)))
    return samplers


def analyse_trajectories(trajectories: Trajectories, dataset: Dataset, samples: int = 8, rank: int = 5,
                         bezier_epochs: int = 10, seed: int = 0,
                         log: Callable[[str], None] = _log) -> LandscapeResult:
    """Run analyses 2–7 of issue 6 on trained trajectories (≥ 2 inits)."""
    if trajectories.inits < 2:
        raise ValueError("the landscape analysis needs at least 2 inits")
    clock: dict[str, float] = {}
    template = trajectories.template()
    labels = dataset.y_test
    start = time.perf_counter()

    log("predictions and similarity of all checkpoints")
    states, inits, epochs = trajectories.flat()
    log_probs = checkpoint_log_probs(template, states, dataset)
    cosine = checkpoint_cosine(template, states)
    disagreement = checkpoint_disagreement(log_probs)
    log("t-SNE of checkpoint predictions")
    tsne = tsne_embedding(log_probs, seed)
    clock["similarity"] = time.perf_counter() - start

    solutions = trajectories.solutions()
    solved_at = max(i for i, p in enumerate(trajectories.phases) if p == "train")
    final_index = [k * len(trajectories.epochs) + solved_at for k in range(trajectories.inits)]
    solution_lp = log_probs[final_index]

    log("interpolation between init 0 and init 1")
    t0 = time.perf_counter()
    paths = {"linear": linear_interpolation(template, solutions[0], solutions[1], dataset)}
    if bezier_epochs > 0:
        paths["Bezier"] = bezier_interpolation(template, solutions[0], solutions[1], dataset, epochs=bezier_epochs,
                                               seed=seed)
    clock["interpolation"] = time.perf_counter() - t0

    log("subspace sampling around init 0's solution")
    t0 = time.perf_counter()
    sweeps = [sweep_sampler(s, template, solution_lp[0], dataset, samples=samples, seed=seed + i)
              for i, s in enumerate(_samplers(trajectories, template, rank, seed))]
    ind_acc, ind_div = independent_points(solution_lp, labels)
    clock["subspace"] = time.perf_counter() - t0

    log("SWA within each mode, ensembles across modes")
    t0 = time.perf_counter()
    pools = {"independent": solution_lp}
    if all(len(trajectories.tail(k)) >= 1 for k in range(trajectories.inits)):
        swa = [swa_state(template, trajectories.tail(k), dataset) for k in range(trajectories.inits)]
        pools["SWA"] = checkpoint_log_probs(template, swa, dataset)
    sizes, curves = ensemble_size_curves(pools, labels, seed=seed)
    clock["swa"] = time.perf_counter() - t0

    result = LandscapeResult(
        inits=inits, epochs=epochs, cosine=cosine, disagreement=disagreement, tsne=tsne,
        cosine_to_final=to_final(cosine, inits), disagreement_to_final=to_final(disagreement, inits),
        trajectory_epochs=list(trajectories.epochs), paths=paths, sweeps=sweeps,
        reference_accuracy=float(accuracy(solution_lp[0], labels)), independent_accuracy=ind_acc,
        independent_diversity=ind_div, ensemble_sizes=sizes, ensemble_curves=curves)
    result.summary = _summary(trajectories, template, result, solution_lp, labels, final_index, clock)
    return result


def _cosine_without_norm(trajectories: Trajectories, template: torch.nn.Module) -> dict[str, float]:
    """With batch norm, also the cosine across final solutions without the norms' scales and shifts."""
    if not has_batch_norm(template):
        return {}
    matrix = checkpoint_cosine(template, trajectories.solutions(), skip_norm=True)
    return {"across_final_without_norm": within_across(matrix, list(range(len(matrix))))[1]}


def _summary(trajectories: Trajectories, template: torch.nn.Module, r: LandscapeResult, solution_lp: torch.Tensor,
             labels: torch.Tensor, final_index: list[int], clock: dict[str, float]) -> dict[str, Any]:
    cos_within, cos_across = within_across(r.cosine, r.inits)
    dis_within, dis_across = within_across(r.disagreement, r.inits)
    final = np.asarray(final_index)
    _, cos_final = within_across(r.cosine[np.ix_(final, final)], list(range(len(final))))
    _, dis_final = within_across(r.disagreement[np.ix_(final, final)], list(range(len(final))))
    ind_acc, ind_div = float(r.independent_accuracy.mean()), float(r.independent_diversity.mean())
    samplers = {}
    for sweep in r.sweeps:
        at, reached = diversity_at_accuracy(sweep, ind_acc)
        acc_at, diverse_enough = accuracy_at_diversity(sweep, ind_div)
        samplers[sweep.name] = {
            "mean_accuracy": float(sweep.accuracy.mean()),
            "mean_normalized_diversity": float(sweep.diversity.mean()),
            "diversity_at_independent_accuracy": at, "reaches_independent_accuracy": reached,
            "accuracy_at_independent_diversity": acc_at, "reaches_independent_diversity": diverse_enough,
            "scales": [float(s) for s in sweep.scales],
        }
    paths = {name: {"min_test_accuracy": float(c.test_accuracy.min()), "max_test_loss": float(c.test_loss.max()),
                    "endpoint_test_accuracy": [float(c.test_accuracy[0]), float(c.test_accuracy[-1])]}
             for name, c in r.paths.items()}
    return {
        "family": trajectories.family, "width": trajectories.width, "depth": trajectories.depth,
        "parameters": sum(p.numel() for p in template.parameters()), "inits": trajectories.inits,
        "epochs": trajectories.config.get("epochs"), "tail_epochs": trajectories.config.get("tail_epochs"),
        "checkpoints_per_init": len(trajectories.epochs), "dataset": trajectories.config.get("dataset"),
        "batch_norm": ("statistics recomputed on the training inputs for every interpolated, sampled or averaged "
                       "network" if has_batch_norm(template) else "none in this family"),
        "solution_test_accuracy": [float(a) for a in accuracy(solution_lp, labels)],
        "cosine": {"within": cos_within, "across": cos_across, "across_final": cos_final,
                   **_cosine_without_norm(trajectories, template)},
        "disagreement": {"within": dis_within, "across": dis_across, "across_final": dis_final},
        "mean_pairwise_kl_final": float(mean_pairwise_kl(solution_lp)),
        "independent": {"mean_accuracy": ind_acc, "mean_normalized_diversity": ind_div},
        "samplers": samplers,
        "interpolation": paths,
        "ensembles": {"sizes": r.ensemble_sizes, **r.ensemble_curves},
        "seconds": {k: round(v, 2) for k, v in clock.items()},
    }
