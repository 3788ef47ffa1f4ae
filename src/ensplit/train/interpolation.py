"""Paths between two solutions in weight space: the straight line, and a fitted quadratic Bézier curve.

Batch norm: every point of a path is a network nobody trained, so its running statistics are recomputed
on the training inputs (`recompute_bn_statistics`) before it is evaluated; the endpoints get the same
treatment, so a path starts and ends at the two models with freshly computed statistics. Families
without batch norm need nothing and the endpoints are the two models exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ensplit.data.dataset import Dataset
from ensplit.ensembles.states import State, flatten_state, has_batch_norm, parameter_names
from ensplit.train.evaluation import evaluate_vectors


@dataclass
class PathCurve:
    """Metrics along a path, one entry per point `t` in [0, 1] (loss = mean cross-entropy in nats)."""

    t: np.ndarray
    test_accuracy: np.ndarray
    test_loss: np.ndarray
    train_accuracy: np.ndarray
    train_loss: np.ndarray
    bn_recomputed: bool


def _loss_and_accuracy(log_probs: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-network mean NLL and accuracy from `[S, N, C]` log-probabilities."""
    nll = -log_probs.gather(-1, y.view(1, -1, 1).expand(log_probs.shape[0], -1, 1)).squeeze(-1).mean(1)
    accuracy = (log_probs.argmax(-1) == y).double().mean(1)
    return nll.double().numpy(), accuracy.numpy()


def evaluate_path(template: nn.Module, vectors: torch.Tensor, t: np.ndarray, dataset: Dataset) -> PathCurve:
    """Evaluate the flat parameter vectors `[T, P]` of a path on the test and training sets."""
    bn = has_batch_norm(template)
    bn_inputs = dataset.x_train if bn else None
    test_lp = evaluate_vectors(template, vectors, dataset.x_test, dataset, bn_inputs)
    train_lp = evaluate_vectors(template, vectors, dataset.x_train, dataset, bn_inputs)
    test_loss, test_acc = _loss_and_accuracy(test_lp, dataset.y_test)
    train_loss, train_acc = _loss_and_accuracy(train_lp, dataset.y_train)
    return PathCurve(t=np.asarray(t), test_accuracy=test_acc, test_loss=test_loss, train_accuracy=train_acc,
                     train_loss=train_loss, bn_recomputed=bn)


def linear_path(a: torch.Tensor, b: torch.Tensor, t: np.ndarray) -> torch.Tensor:
    """Points `(1 - t) a + t b` of the segment between flat vectors `a`, `b` `[P]`: `[T, P]`."""
    tt = torch.as_tensor(t, dtype=a.dtype).view(-1, 1)
    return (1 - tt) * a + tt * b


def bezier_path(a: torch.Tensor, control: torch.Tensor, b: torch.Tensor, t: np.ndarray) -> torch.Tensor:
    """Points `(1-t)² a + 2t(1-t) c + t² b` of the quadratic Bézier curve (Garipov et al. 2018): `[T, P]`."""
    tt = torch.as_tensor(t, dtype=a.dtype).view(-1, 1)
    return (1 - tt) ** 2 * a + 2 * tt * (1 - tt) * control + tt**2 * b


def linear_interpolation(template: nn.Module, state_a: State, state_b: State, dataset: Dataset,
                         points: int = 21) -> PathCurve:
    """Accuracy and loss along the straight line from `state_a` (t = 0) to `state_b` (t = 1)."""
    names = parameter_names(template)
    t = np.linspace(0.0, 1.0, points)
    path = linear_path(flatten_state(state_a, names), flatten_state(state_b, names), t)
    return evaluate_path(template, path, t, dataset)


def fit_bezier_control(template: nn.Module, state_a: State, state_b: State, dataset: Dataset, epochs: int = 10,
                       lr: float = 1e-3, batch_size: int = 128, seed: int = 0) -> torch.Tensor:
    """Fit the control point of a low-loss quadratic Bézier curve between two solutions.

    Minimises E_{t ~ U(0,1)} loss(θ(t)) over the control point only (endpoints fixed), one random t per
    batch, with Adam; starts from the midpoint of the segment. Batch norm runs in train mode (batch
    statistics) while fitting. Returns the flat control point `[P]` (float64).
    """
    names = parameter_names(template)
    model = template  # only its structure and buffers are used, through functional_call
    dtype = next(template.parameters()).dtype
    a = flatten_state(state_a, names).to(dtype)
    b = flatten_state(state_b, names).to(dtype)
    control = ((a + b) / 2).clone().requires_grad_(True)
    shapes = [state_a[n].shape for n in names]
    sizes = [s.numel() for s in shapes]
    optimizer = torch.optim.Adam([control], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    buffers = {k: v.clone() for k, v in state_a.items() if k not in names}
    was_training = model.training
    model.train()
    n = dataset.x_train.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size].to(dataset.x_train.device)
            t = float(torch.rand((), generator=generator))
            theta = (1 - t) ** 2 * a + 2 * t * (1 - t) * control + t**2 * b
            params = {nm: p.view(shape) for nm, p, shape in zip(names, theta.split(sizes), shapes, strict=True)}
            logits = functional_call(model, {**params, **buffers}, (dataset.prepare(dataset.x_train[idx]).to(dtype),))
            loss = F.cross_entropy(logits, dataset.y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.train(was_training)
    return control.detach().to(torch.float64)


def bezier_interpolation(template: nn.Module, state_a: State, state_b: State, dataset: Dataset,
                         points: int = 21, epochs: int = 10, lr: float = 1e-3, seed: int = 0) -> PathCurve:
    """Accuracy and loss along a fitted quadratic Bézier curve from `state_a` to `state_b`."""
    names = parameter_names(template)
    control = fit_bezier_control(template, state_a, state_b, dataset, epochs=epochs, lr=lr, seed=seed)
    t = np.linspace(0.0, 1.0, points)
    path = bezier_path(flatten_state(state_a, names), control, flatten_state(state_b, names), t)
    return evaluate_path(template, path, t, dataset)
