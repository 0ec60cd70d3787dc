"""Data-aware merging of a coupled channel group, the numpy core: one removal set, one fit per tensor read.

A group's channels are read at several tensors (after each residual Add of a stage, through a
Concatenate...). Each *unit* is one tensor (or the stacked tensors a shared consumer reads) with
the weights of the consumers reading it. Removing channel ``j`` removes it at every unit; each
unit rebuilds it from the kept channels with its own least squares (``a_j ≈ Σ β_jk a_k + c_j``
on that tensor, one β for all the consumers of the tensor). The greedy backward elimination of
:mod:`weightkit.compress.merge.fitting.data_fit` is run on the *summed* error over the units: the cost of dropping
``j`` is ``Σ_u ‖coef_u,j‖² / P_u,jj``, exact for the kept set at each step.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE, _fit, _inverse

__all__ = ["GroupFitPlan", "plan_group_fit"]

_REFRESH_EVERY = 32


@dataclass
class GroupFitPlan:
    """Channels removed from a group and each unit's reconstruction of them.

    Attributes
    ----------
    keep, remove : ndarray of int
        Sorted channel indices.
    beta : list of ndarray of shape (n_removed, n_kept)
        One per unit.
    intercept : list of ndarray of shape (n_removed,)
    r2 : ndarray of shape (n_removed,)
        The worst R² over the units of each removed channel.
    dead : ndarray of int
        Channels constant at every unit.
    error : float
        Fraction of the summed consumer input variance lost.
    """

    keep: np.ndarray
    remove: np.ndarray
    beta: list
    intercept: list
    r2: np.ndarray
    dead: np.ndarray
    error: float


def _unit_stats(a, weights):
    mean = a.mean(axis=0)
    centered = a - mean
    cov = centered.T @ centered / a.shape[0]
    g = cov if weights is None else cov @ weights
    total = float(np.trace(cov) if weights is None else np.einsum("io,io->", weights, g))
    return mean, cov, g, total


def plan_group_fit(units, *, count=None, max_error=None, ridge=DEFAULT_RIDGE, dead_tolerance=1e-6):
    """Choose the channels of a group to remove by the summed error over the tensors its consumers read.

    Parameters
    ----------
    units : list of (ndarray of shape (n_rows, n), ndarray of shape (n, n_outputs) or None)
        Per unit: calibration activations of the group's channels at the tensor read, and the
        weights leaving each channel there (all its consumers side by side).
    count : int, default=None
        Remove this many channels (at most ``n - 1``).
    max_error : float, default=None
        Instead: remove while the summed lost variance stays at most this fraction of the total.
    ridge : float, default=1e-6
    dead_tolerance : float, default=1e-6

    Returns
    -------
    GroupFitPlan
    """
    arrays = [np.asarray(a, dtype=np.float64) for a, _ in units]
    weights = [None if w is None else np.asarray(w, dtype=np.float64) for _, w in units]
    n = arrays[0].shape[1]
    stats = [_unit_stats(a, w) for a, w in zip(arrays, weights)]
    constant = np.ones(n, dtype=bool)
    for mean, cov, _, _ in stats:
        std = np.sqrt(np.maximum(np.diag(cov), 0.0))
        constant &= std <= dead_tolerance * np.maximum(1.0, np.abs(mean))
    dead = np.flatnonzero(constant)
    limit = n - 1 if count is None else min(n - 1, int(count))
    order = list(dead[:limit])
    kept = [int(k) for k in np.setdiff1d(np.arange(n), dead)]
    total = sum(s[3] for s in stats)
    budget = None if max_error is None else float(max_error) * total
    lost = 0.0
    if len(order) < limit and len(kept) > 1:
        chosen, lost = _greedy(stats, kept, limit - len(order), budget, ridge)
        order += chosen
    remove = np.sort(np.asarray(order, dtype=np.int64))
    keep = np.setdiff1d(np.arange(n), remove)
    betas, intercepts, r2 = [], [], np.ones(remove.size)
    for a, (mean, cov, _, _) in zip(arrays, stats):
        beta, intercept, unit_r2 = _fit(a, mean, cov, keep, remove, dead, ridge)
        betas.append(beta)
        intercepts.append(intercept)
        r2 = np.minimum(r2, unit_r2)
    return GroupFitPlan(keep, remove, betas, intercepts, r2, dead.astype(np.int64),
                        float(lost / total) if total > 0 else 0.0)


def _greedy(stats, kept, count, budget, ridge, costs=None):
    """Backward elimination; ``costs`` (a list), when given, receives each removal's added error."""
    kept = list(kept)
    chosen, lost = [], 0.0

    def fresh():
        out = []
        for _, cov, g, _ in stats:
            precision = _inverse(cov, kept, ridge)
            out.append([precision, precision @ g[kept]])
        return out

    state = fresh()
    since = 0
    while len(chosen) < count and len(kept) > 1:
        cost = np.zeros(len(kept))
        for precision, coef in state:
            cost += np.einsum("ko,ko->k", coef, coef) / np.maximum(np.diag(precision), 1e-300)
        position = int(np.argmin(cost))
        if budget is not None and lost + cost[position] > budget * (1 + 1e-12) + 1e-300:
            break
        lost += float(cost[position])
        chosen.append(int(kept[position]))
        if costs is not None:
            costs.append(float(cost[position]))
        others = np.arange(len(kept)) != position
        for item in state:
            precision, coef = item
            column = precision[:, position].copy()
            pivot = column[position]
            item[0] = precision[np.ix_(others, others)] - np.outer(column[others], column[others]) / pivot
            item[1] = coef[others] - np.outer(column[others], coef[position]) / pivot
        del kept[position]
        since += 1
        if since >= _REFRESH_EVERY and kept:
            state, since = fresh(), 0
    return chosen, lost
