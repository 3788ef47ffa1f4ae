"""The Pareto front of candidates under several costs to minimise (parameters, FLOPs, predicted CNLL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def pareto_front(points: Sequence[Sequence[Any]]) -> list[bool]:
    """Whether each point is non-dominated, every criterion to be minimised: no other point is <= in all and
    < in one. Points are culled in lexicographic order, where a point can only be dominated by one before it,
    and only the front found so far needs checking (dominance is transitive). Equal points are both kept."""
    order = sorted(range(len(points)), key=lambda i: tuple(points[i]))
    front: list[int] = []
    for i in order:
        p = tuple(points[i])
        dominated = any(all(a <= b for a, b in zip(points[j], p, strict=True)) and tuple(points[j]) != p
                        for j in front)
        if not dominated:
            front.append(i)
    kept = set(front)
    return [i in kept for i in range(len(points))]
