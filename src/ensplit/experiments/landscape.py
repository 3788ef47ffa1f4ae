"""Diversity and the loss landscape (Fort et al. 2019): independent inits against subspace samples and SWA.

`run_landscape(config, out)` trains the inits' trajectories with the recipe, one stored run per init in `out`
(`landscape_train`: a killed run resumes), or reuses saved checkpoints, then runs every analysis on them:
weight cosine and disagreement within and across trajectories, t-SNE of the checkpoints' predictions, linear
and Bézier interpolation between two solutions, subspace samplers (MC dropout, diagonal and low-rank Gaussians
of the trajectory tail, random directions) against independent inits at equal accuracy, SWA ensembles across
modes, and SWA against ensembles on the corrupted test sets (dataset shift, `landscape_shift`). It writes
`out/summary.json` (the caller writes `out/report.html`: `ensplit.reports.write(result, out)`);
`LandscapeResult.to_json()` is what `ensplit landscape --json` prints.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ensplit._version import provenance
from ensplit.analysis.landscape import (
    SamplerSweep,
    accuracy_and_diversity,
    accuracy_at_diversity,
    checkpoint_cosine,
    checkpoint_disagreement,
    diversity_at_accuracy,
    ensemble_size_curves,
    independent_points,
    to_final,
    tsne_embedding,
    within_across,
)
from ensplit.analysis.subspace import DiagonalGaussian, DropoutSampler, LowRankGaussian, Sampler, random_directions
from ensplit.data.dataset import Dataset
from ensplit.ensembles.cost import forward_flops
from ensplit.ensembles.states import State, flatten_state, flatten_states, has_batch_norm, parameter_names
from ensplit.errors import EnsplitError
from ensplit.experiments.landscape_config import MIN_CHECKPOINTS_PER_INIT, LandscapeConfig
from ensplit.experiments.landscape_legacy import landscape_folder
from ensplit.experiments.landscape_shift import shift_analysis
from ensplit.experiments.landscape_stored import stored_recipe
from ensplit.experiments.landscape_train import train_landscape
from ensplit.jsonable import to_jsonable
from ensplit.metrics import accuracy, mean_pairwise_kl
from ensplit.runs.folder import admit
from ensplit.store import atomic_write_text, folder_lock
from ensplit.store.ownership import claim_folder
from ensplit.store.trajectories import Trajectories, load_trajectories
from ensplit.train.evaluation import evaluate_states, evaluate_vectors
from ensplit.train.interpolation import PathCurve, bezier_interpolation, linear_interpolation
from ensplit.train.swa import swa_state
from ensplit.train.trajectories import trajectory_template

__all__ = ["MIN_CHECKPOINTS_PER_INIT", "LandscapeConfig", "LandscapeResult", "analyse_trajectories", "run_landscape"]
FLOPS_BATCH = 128  # FLOPs per example are measured on a batch of this size (as compare's)

def _log(message: str) -> None:
    print(f"[landscape] {message}", file=sys.stderr, flush=True)


def checkpoint_log_probs(template: nn.Module, states: Sequence[State], dataset: Dataset) -> torch.Tensor:
    """Test-set log-probabilities `[S, N, C]` of trained checkpoints (their own batch-norm statistics)."""
    return evaluate_states(template, states, dataset.x_test, dataset)


def sweep_sampler(sampler: Sampler, template: nn.Module, reference_log_probs: torch.Tensor, dataset: Dataset,
                  scales: Sequence[float] | None = None, samples: int = 8, stop_accuracy: float | None = None,
                  seed: int = 0) -> SamplerSweep:
    """Draw `samples` networks per scale (ascending); stop after a scale whose mean accuracy is below
    `stop_accuracy` (default: halfway from the reference's accuracy down to chance)."""
    labels = dataset.y_test
    ref_acc = float(accuracy(reference_log_probs, labels))
    if stop_accuracy is None:
        stop_accuracy = (ref_acc + 1.0 / dataset.num_classes) / 2
    bn_inputs = dataset.x_train if has_batch_norm(template) else None
    generator = torch.Generator().manual_seed(seed)
    kept, accs, divs = [], [], []
    for scale in scales if scales is not None else sampler.default_scales:
        vectors = sampler.sample(scale, samples, generator)
        log_probs = evaluate_vectors(template, vectors, dataset.x_test, dataset, bn_inputs)
        acc, div = accuracy_and_diversity(reference_log_probs, log_probs, labels)
        kept.append(scale)
        accs.append(acc)
        divs.append(div)
        if acc.mean() < stop_accuracy:
            break
    return SamplerSweep(sampler.name, np.asarray(kept), np.stack(accs), np.stack(divs))


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
    shift: dict[str, Any] = field(default_factory=dict)   # `shift_curves` on the corrupted test sets
    summary: dict[str, Any] = field(default_factory=dict)
    config: LandscapeConfig | None = None
    report: Path | None = None  # set by the caller that writes the page (not part of the summary)
    trained_jobs: int = 0  # inits this run trained (0 for a finished folder; not part of the summary)

    def to_json(self) -> dict[str, Any]:
        """The summary numbers (what `ensplit landscape --json` prints and `summary.json` holds)."""
        return to_jsonable(self.summary)


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


def check_trajectories(trajectories: Trajectories, source: str = "the trajectories") -> None:
    """Refuse trajectories the analyses cannot use: fewer than 2 inits (nothing to compare across), fewer than
    MIN_CHECKPOINTS_PER_INIT checkpoints per init (nothing to compare within one trajectory), or checkpoints
    whose tensors do not fit the architecture the manifest names (the loader checked they all agree)."""
    if trajectories.inits < 2:
        raise EnsplitError(f"{source} hold {trajectories.inits} init; the landscape analysis needs >= 2")
    count = len(trajectories.epochs)
    if count < MIN_CHECKPOINTS_PER_INIT:
        raise EnsplitError(f"{source} hold {count} checkpoint(s) per init; the within-trajectory similarity and "
                           f"the t-SNE need >= {MIN_CHECKPOINTS_PER_INIT}")
    expected = {n: tuple(t.shape) for n, t in trajectory_template(trajectories).state_dict().items()}
    if {n: tuple(t.shape) for n, t in trajectories.states[0][0].items()} != expected:
        depth = "the default depth" if trajectories.depth is None else f"depth {trajectories.depth}"
        raise EnsplitError(f"{source}: the checkpoints' tensors do not fit the manifest's architecture "
                           f"({trajectories.family} width {trajectories.width}, {depth}); the manifest or the "
                           "checkpoints are damaged")


def _solution_checkpoints(trajectories: Trajectories) -> list[int]:
    """Rows of `trajectories.flat()` holding each init's solution (its checkpoint at the end of training)."""
    solved_at = max(i for i, p in enumerate(trajectories.phases) if p == "train")
    return [k * len(trajectories.epochs) + solved_at for k in range(trajectories.inits)]


def _interpolation_paths(template: nn.Module, solutions: Sequence[State], dataset: Dataset, bezier_epochs: int,
                         seed: int) -> dict[str, PathCurve]:
    """The linear path between init 0's and init 1's solutions, and a fitted Bézier curve unless
    `bezier_epochs` is 0."""
    paths = {"linear": linear_interpolation(template, solutions[0], solutions[1], dataset)}
    if bezier_epochs > 0:
        paths["Bezier"] = bezier_interpolation(template, solutions[0], solutions[1], dataset, epochs=bezier_epochs,
                                               seed=seed)
    return paths


def _swa_and_independent(trajectories: Trajectories, template: nn.Module, solutions: Sequence[State],
                         solution_lp: torch.Tensor, dataset: Dataset
                         ) -> tuple[dict[str, torch.Tensor], dict[str, Sequence[State]]]:
    """Test log-probabilities `[inits, N, C]` and states of the independent solutions and, when every init has
    a tail, of each init's SWA average."""
    pools = {"independent": solution_lp}
    states = {"independent": solutions}
    if all(len(trajectories.tail(k)) >= 1 for k in range(trajectories.inits)):
        states["SWA"] = [swa_state(template, trajectories.tail(k), dataset) for k in range(trajectories.inits)]
        pools["SWA"] = checkpoint_log_probs(template, states["SWA"], dataset)
    return pools, states


def analyse_trajectories(trajectories: Trajectories, dataset: Dataset, samples: int = 8, rank: int = 5,
                         bezier_epochs: int = 10, seed: int = 0,
                         log: Callable[[str], None] = _log) -> LandscapeResult:
    """Run analyses 2–7 of issue 6 and the dataset-shift comparison on trained trajectories (≥ 2 inits, ≥ 2
    checkpoints each)."""
    check_trajectories(trajectories)
    clock: dict[str, float] = {}
    template = trajectory_template(trajectories)
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
    final_index = _solution_checkpoints(trajectories)
    solution_lp = log_probs[final_index]

    log("interpolation between init 0 and init 1")
    t0 = time.perf_counter()
    paths = _interpolation_paths(template, solutions, dataset, bezier_epochs, seed)
    clock["interpolation"] = time.perf_counter() - t0

    log("subspace sampling around init 0's solution")
    t0 = time.perf_counter()
    sweeps = [sweep_sampler(s, template, solution_lp[0], dataset, samples=samples, seed=seed + i)
              for i, s in enumerate(_samplers(trajectories, template, rank, seed))]
    ind_acc, ind_div = independent_points(solution_lp, labels)
    clock["subspace"] = time.perf_counter() - t0

    log("SWA within each mode, ensembles across modes")
    t0 = time.perf_counter()
    pools, states = _swa_and_independent(trajectories, template, solutions, solution_lp, dataset)
    sizes, curves = ensemble_size_curves(pools, labels, seed=seed)
    clock["swa"] = time.perf_counter() - t0

    log("SWA and ensembles under dataset shift (corrupted test sets)")
    t0 = time.perf_counter()
    shift = shift_analysis(template, states, dataset, seed=seed)
    clock["shift"] = time.perf_counter() - t0

    result = LandscapeResult(
        inits=inits, epochs=epochs, cosine=cosine, disagreement=disagreement, tsne=tsne,
        cosine_to_final=to_final(cosine, inits), disagreement_to_final=to_final(disagreement, inits),
        trajectory_epochs=list(trajectories.epochs), paths=paths, sweeps=sweeps,
        reference_accuracy=float(accuracy(solution_lp[0], labels)), independent_accuracy=ind_acc,
        independent_diversity=ind_div, ensemble_sizes=sizes, ensemble_curves=curves, shift=shift)
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
        "inits": trajectories.inits,
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
        "shift": r.shift,
        "seconds": {k: round(v, 2) for k, v in clock.items()},
        **provenance(),
    }


def run_landscape(config: LandscapeConfig | None = None, out: str | Path = "landscape",
                  progress: bool = True) -> LandscapeResult:
    """Train what `out` lacks (or load `config.trajectories`), run every analysis, write `out/summary.json`; the
    caller writes `out/report.html` (`ensplit.reports.write(result, out)`). Trained inits are stored in `out`
    as runs (`landscape_train`): a killed run resumes, a finished one trains nothing."""
    config = config or LandscapeConfig()
    out = Path(out)
    with folder_lock(out, "landscape"):  # an unusable --out is refused before any training
        claim_folder(out, "landscape", landscape_folder)
        return _landscape(admit(config, out, "landscape"), out, progress)


def _cost(trajectories: Trajectories, dataset: Dataset) -> dict[str, Any]:
    """`params` and `flops_per_example` of one network (one init) of the trajectories' architecture."""
    template = trajectory_template(trajectories)
    sample = dataset.prepare(dataset.x_test[:FLOPS_BATCH]).cpu().to(next(template.parameters()).dtype)
    return {"params": sum(p.numel() for p in template.parameters()),
            "flops_per_example": forward_flops(template, sample)}


def _landscape(config: LandscapeConfig, out: Path, progress: bool) -> LandscapeResult:
    """The experiment itself; the caller holds `out`'s lock."""
    recipe = config.recipe
    log = _log if progress else (lambda message: None)
    start = time.perf_counter()
    dataset = recipe.load_data()
    seconds_per_epoch, trained = None, 0
    if config.trajectories:
        trajectories = load_trajectories(config.trajectories)
        check_trajectories(trajectories, f"trajectories = {config.trajectories!r}")
        recipe = stored_recipe(config, trajectories, dataset, log)
        log(f"loaded {trajectories.inits} trajectories from {config.trajectories}")
    else:
        stored = train_landscape(config, out, dataset, progress, log)
        trajectories, trained, seconds_per_epoch = stored.trajectories, stored.trained_jobs, stored.seconds_per_epoch
    train_seconds = time.perf_counter() - start
    result = analyse_trajectories(trajectories, dataset, samples=config.samples, rank=config.rank,
                                  bezier_epochs=config.bezier_epochs, seed=recipe.seed, log=log)
    result.config, result.trained_jobs = config, trained
    result.summary = {**result.summary, **_cost(trajectories, dataset), "seconds_per_epoch": seconds_per_epoch,
                      "out": str(out), "recipe": recipe.to_json()}
    result.summary["seconds"] = {"training": round(train_seconds, 2), **result.summary["seconds"]}
    result.summary["seconds"]["total"] = round(time.perf_counter() - start, 2)
    atomic_write_text(out / "summary.json", json.dumps(result.to_json(), indent=2))
    return result
