"""Which layers give up how many neurons: a greedy path through the per-layer sensitivity curves.

Pure Python and numpy, no model: each layer is a list of levels ``(cost_removed, error)`` from
:mod:`weightkit.compress.shrink.sensitivity`, level 0 being ``(0, 0)``. :func:`greedy_path` starts with
nothing removed and repeatedly takes the move with the smallest error increase per unit of cost
removed (parameters, or multiply-adds for ``--target latency``), one layer moving to any of its
deeper levels, until every layer is at its deepest. The path is a list of allocations, each
removing more than the one before; :func:`weightkit.compress.shrink.shrink_model` then searches it for the
deepest allocation whose measured accuracy stays within the budget.

Why greedy and not a knapsack: the per-layer errors are measured one layer at a time and do not
add up exactly once several layers shrink together (and fine-tuning recovers part of it), so the
exact optimum of an additive model is not worth its cost. What matters is the *order* in which
layers give up neurons; the budget itself is checked on the real merged model. Allowing a jump
over several levels in one move handles curves that are not convex (a layer whose error stays
flat up to 75% and then rises).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["Allocation", "greedy_path"]


@dataclass
class Allocation:
    """One point of the path.

    Attributes
    ----------
    levels : dict of str to int
        Level index per layer (0: untouched).
    predicted_error : float
        Sum of the layers' errors at their levels (the additive model).
    cost_removed : float
        Sum of the layers' removed cost at their levels.
    """

    levels: dict
    predicted_error: float
    cost_removed: float

    def to_dict(self):
        return {"levels": dict(self.levels), "predicted_error": self.predicted_error,
                "cost_removed": self.cost_removed}


def _monotone(levels):
    """Levels with the error made non-decreasing (a deeper merge never counts as better than a lighter one)."""
    costs = np.array([c for c, _ in levels], dtype=np.float64)
    errors = np.maximum.accumulate(np.maximum(np.array([e for _, e in levels], dtype=np.float64), 0.0))
    return costs, errors


def greedy_path(curves):
    """Allocations from nothing removed to everything measured removed, cheapest error per cost first.

    Parameters
    ----------
    curves : dict of str to list of (float, float)
        Per layer, its levels ``(cost_removed, error)`` in increasing cost, level 0 ``(0, 0)``.

    Returns
    -------
    list of Allocation
        Starting with every layer at level 0; each next allocation moves one layer deeper.

    Examples
    --------
    >>> path = greedy_path({"a": [(0, 0), (10, 0.5)], "b": [(0, 0), (10, 0.1)]})
    >>> [p.levels for p in path]
    [{'a': 0, 'b': 0}, {'a': 0, 'b': 1}, {'a': 1, 'b': 1}]
    """
    tables = {name: _monotone(levels) for name, levels in curves.items()}
    current = {name: 0 for name in curves}
    path = [Allocation(dict(current), 0.0, 0.0)]
    while True:
        best = None
        for name, (costs, errors) in tables.items():
            here = current[name]
            for level in range(here + 1, len(costs)):
                gained = costs[level] - costs[here]
                if gained <= 0:
                    continue
                rate = (errors[level] - errors[here]) / gained
                key = (rate, -gained, name)
                if best is None or key < best[0]:
                    best = (key, name, level)
        if best is None:
            return path
        _, name, level = best
        current[name] = level
        path.append(Allocation(dict(current),
                               float(sum(tables[n][1][current[n]] for n in tables)),
                               float(sum(tables[n][0][current[n]] for n in tables))))
