"""The lr × weight-decay grid of `recommend --tune` and its grid-edge rule (pure: no training).

When the best cell lies on an edge (lowest or highest lr, highest weight decay, lowest weight decay when it is
not 0; weight decay 0 is a true lower edge), the grid grows one step that way (lr × or ÷ 2, weight decay × or
÷ 4), at most a given number of times; a search says whether its optimum is interior or still on an edge. An
axis given one value is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Cell = tuple[float, float]  # (lr, weight_decay)
LR_STEP = 2.0
WD_STEP = 4.0


@dataclass(frozen=True)
class Grid:
    """The lr × weight-decay cells tried (both axes sorted ascending)."""

    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "lrs", tuple(sorted(self.lrs)))
        object.__setattr__(self, "weight_decays", tuple(sorted(self.weight_decays)))

    def cells(self) -> list[Cell]:
        return [(lr, wd) for lr in self.lrs for wd in self.weight_decays]


def open_edges(grid: Grid, best: Cell) -> list[str]:
    """The edges of `grid` the best cell lies on that can still be extended: "lr_low", "lr_high", "wd_low"
    (only when the lowest weight decay is not 0), "wd_high". An axis of one value is fixed (never extended)."""
    lr, wd = best
    edges = []
    if len(grid.lrs) > 1:
        edges += ["lr_low"] * (lr == grid.lrs[0]) + ["lr_high"] * (lr == grid.lrs[-1])
    if len(grid.weight_decays) > 1:
        edges += ["wd_low"] * (wd == grid.weight_decays[0] > 0) + ["wd_high"] * (wd == grid.weight_decays[-1])
    return edges


def extend(grid: Grid, edges: list[str]) -> Grid:
    """`grid` grown one step beyond each edge (lr × or ÷ 2, weight decay × or ÷ 4)."""
    lrs, wds = list(grid.lrs), list(grid.weight_decays)
    if "lr_low" in edges:
        lrs.insert(0, lrs[0] / LR_STEP)
    if "lr_high" in edges:
        lrs.append(lrs[-1] * LR_STEP)
    if "wd_low" in edges:
        wds.insert(0, wds[0] / WD_STEP)
    if "wd_high" in edges:
        wds.append(wds[-1] * WD_STEP)
    return Grid(tuple(lrs), tuple(wds))


@dataclass
class GridSearch:
    """One family's search: the grid so far, every cell's score, and the extensions left."""

    grid: Grid
    extensions_left: int
    scores: dict[Cell, float] = field(default_factory=dict)
    extended: list[list[str]] = field(default_factory=list)

    def pending(self) -> list[Cell]:
        return [cell for cell in self.grid.cells() if cell not in self.scores]

    @property
    def best(self) -> Cell:
        """The lowest-scoring cell (ties: the smaller lr, then the smaller weight decay)."""
        return min(self.grid.cells(), key=lambda c: (self.scores[c], c))

    @property
    def edges(self) -> list[str]:
        """Edges the best cell still lies on (empty: the optimum is interior, or at weight decay 0)."""
        return open_edges(self.grid, self.best)

    def advance(self) -> bool:
        """With every cell scored: extend past the best cell's edges if any are left; True when it did."""
        edges = self.edges
        if not edges or self.extensions_left <= 0:
            return False
        self.grid = extend(self.grid, edges)
        self.extensions_left -= 1
        self.extended.append(edges)
        return True


def search_grid(grid: Grid, score: Callable[[list[Cell]], dict[Cell, float]], extensions: int) -> GridSearch:
    """Score `grid`, then apply the grid-edge rule until the best cell is interior or `extensions` are spent."""
    search = GridSearch(grid, extensions)
    while True:
        search.scores.update(score(search.pending()))
        if not search.advance():
            return search
