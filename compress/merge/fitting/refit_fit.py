"""Sequential refit, the numpy core: rebuild the original consumers' inputs from the merged model's kept channels.

In a one-shot data-aware merge every relation is fitted on the *original* model's activations, so
the errors of successive layers add up. The sequential refit (He et al. 2017, "Channel pruning";
ThiNet, Luo et al. 2017) fits each tensor a consumer reads on the model merged so far instead:
with ``X`` the merged model's activations of a group's channels there (regressors) and ``Y`` the
original model's (targets), every channel ``j`` of the group, kept or removed, is rebuilt as

    y_j ≈ Σ_k B_jk · x_k + c_j        (k over the kept, live channels)

by ridge least squares, and folded into the consumer: ``W'[k] = Σ_j B_jk · W[j]``, the
least-squares reconstruction of the original consumer's pre-activation ``Y W`` from the kept
channels for any ``W``. For kept channels the fit is of the drift ``y_j − x_j`` (so ``B`` stays
the identity where the merged model already agrees, and the ridge shrinks towards it); when
``X = Y`` (nothing merged upstream) the plan equals :func:`weightkit.compress.merge.fitting.group_fit.plan_group_fit`'s.

The channels to remove are chosen by the same greedy backward elimination
(:mod:`weightkit.compress.merge.fitting.group_fit`) on the error in the *original* consumers' inputs predicted from
the *merged* channels: ``cov = Cov(X)``, ``g = Cov(X, Y) · W``.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE, _inverse
from weightkit.compress.merge.fitting.group_fit import _greedy

__all__ = ["ALLOCATIONS", "RIDGE_GRID", "RefitMap", "allocate_removals", "choose_refit_map", "fit_refit_map",
           "pruning_map", "refit_selection"]

#: How ``--ratio`` is spread over the groups: the same share of each, or the cheapest channels of the model.
ALLOCATIONS = {
    "uniform": "round(ratio · n) channels of every group",
    "global": "the same total, the channels whose removal costs the least share of their group's consumer input "
              "variance, over the whole model",
}

#: Relative ridges the cross-validation of :func:`choose_refit_map` tries beside the given one.
RIDGE_GRID = (1e-3, 1e-2, 1e-1)


@dataclass
class RefitMap:
    """The original channels of one tensor rebuilt from the merged model's kept channels.

    Attributes
    ----------
    keep, remove : ndarray of int
        Sorted channel indices of the group.
    beta : ndarray of shape (n, n_kept)
        ``beta[j, k]``: weight of kept channel ``keep[k]`` (merged model) in original channel ``j``.
    shift : ndarray of shape (n,)
    r2 : ndarray of shape (n_removed,)
        Coefficient of determination of each removed channel's reconstruction.
    error : float
        Fraction of the consumers' original input variance (``tr(Wᵀ Cov(Y) W)``) not rebuilt,
        when ``weights`` were given; else of ``tr(Cov(Y))``.
    """

    keep: np.ndarray
    remove: np.ndarray
    beta: np.ndarray
    shift: np.ndarray
    r2: np.ndarray
    error: float
    ridge: float = DEFAULT_RIDGE
    diagonal: bool = False


def pruning_map(n, remove):
    """The map that keeps the kept channels as they are and drops the removed ones (no fit)."""
    remove = np.asarray(remove, dtype=np.int64)
    keep = np.setdiff1d(np.arange(n), remove)
    beta = np.zeros((n, keep.size))
    beta[keep, np.arange(keep.size)] = 1.0
    return RefitMap(keep, remove, beta, np.zeros(n), np.zeros(remove.size), 0.0)


def _centered(a):
    a = np.asarray(a, dtype=np.float64)
    mean = a.mean(axis=0)
    return a - mean, mean


def _dead(cov, mean, tolerance):
    std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    return std <= tolerance * np.maximum(1.0, np.abs(mean))


def _stats(units):
    stats, total = [], 0.0
    n = np.asarray(units[0][0]).shape[1]
    for x, y, weights in units:
        xc, x_mean = _centered(x)
        yc, _ = _centered(y)
        rows = xc.shape[0]
        cov = xc.T @ xc / rows
        g = (xc.T @ yc / rows) @ weights
        unit_total = float(np.einsum("io,io->", weights, (yc.T @ yc / rows) @ weights))
        stats.append((x_mean, cov, g, unit_total))
        total += unit_total
    return stats, total, n


def allocate_removals(groups, ratio, *, ridge=DEFAULT_RIDGE, dead_tolerance=1e-6):
    """Spread ``Σ round(ratio · n_g)`` removals over groups by the share of each group's error they cost.

    Each group's backward elimination (as :func:`refit_selection`) is run to one kept channel,
    recording what every removal adds, as a fraction of the group's consumer input variance
    (constant channels cost 0). The cheapest next removal of any group is taken until the total
    is reached; a group keeps at least one channel.

    Parameters
    ----------
    groups : list of list of units
        Per group, its units as for :func:`refit_selection`.
    ratio : float in (0, 1)
    ridge, dead_tolerance : float

    Returns
    -------
    counts : list of int
        Channels to remove per group.
    """
    curves, budget = [], 0
    for units in groups:
        stats, total, n = _stats(units)
        constant = np.ones(n, dtype=bool)
        for x_mean, cov, _, _ in stats:
            constant &= _dead(cov, x_mean, dead_tolerance)
        kept = [int(k) for k in np.flatnonzero(~constant)]
        costs = [0.0] * min(int(constant.sum()), n - 1)
        if len(costs) < n - 1 and len(kept) > 1:
            _greedy(stats, kept, n - 1 - len(costs), None, ridge, costs)
        curves.append(np.asarray(costs) / total if total > 0 else np.zeros(len(costs)))
        budget += min(n - 1, round(float(ratio) * n))
    counts = [0] * len(groups)
    for _ in range(budget):
        options = [(curve[count], g) for g, (curve, count) in enumerate(zip(curves, counts)) if count < curve.size]
        if not options:
            break
        counts[min(options)[1]] += 1
    return counts


def refit_selection(units, *, count=None, max_error=None, ridge=DEFAULT_RIDGE, dead_tolerance=1e-6):
    """Choose a group's channels to remove by the error in the original consumers' inputs.

    Parameters
    ----------
    units : list of (ndarray of shape (n_rows, n), ndarray of shape (n_rows, n), ndarray of shape (n, n_outputs))
        Per tensor read: the merged model's activations ``X``, the original model's ``Y`` on the
        same inputs and positions, and the consumers' weights leaving each channel there.
    count : int, default=None
        Remove this many channels (at most ``n - 1``).
    max_error : float, default=None
        Instead: remove while the added error stays at most this fraction of the total.
    ridge : float, default=1e-6
    dead_tolerance : float, default=1e-6
        Channels constant in ``X`` at every unit are removed first, at no cost.

    Returns
    -------
    remove : ndarray of int
        Sorted.
    dead : ndarray of int
        Channels constant in ``X`` at every unit.
    """
    stats, total, n = _stats(units)
    constant = np.ones(n, dtype=bool)
    for x_mean, cov, _, _ in stats:
        constant &= _dead(cov, x_mean, dead_tolerance)
    dead = np.flatnonzero(constant)
    limit = n - 1 if count is None else min(n - 1, int(count))
    order = list(dead[:limit])
    kept = [int(k) for k in np.setdiff1d(np.arange(n), dead)]
    budget = None if max_error is None else float(max_error) * total
    if len(order) < limit and len(kept) > 1:
        chosen, _ = _greedy(stats, kept, limit - len(order), budget, ridge)
        order += chosen
    return np.sort(np.asarray(order, dtype=np.int64)), dead.astype(np.int64)


def fit_refit_map(x, y, remove, *, weights=None, ridge=DEFAULT_RIDGE, dead_tolerance=1e-6, diagonal=False,
                  intercept=True):
    """Rebuild every original channel of one tensor from the merged model's kept channels.

    Parameters
    ----------
    x : ndarray of shape (n_rows, n)
        The merged-so-far model's activations of the group's channels (regressors).
    y : ndarray of shape (n_rows, n)
        The original model's activations on the same inputs and positions (targets).
    remove : ndarray of int
        Channels removed from the group.
    weights : ndarray of shape (n, n_outputs), default=None
        The consumers' weights leaving each channel, for :attr:`RefitMap.error`.
    ridge : float, default=1e-6
        Relative to each regressor's variance, as in :func:`weightkit.compress.merge.fitting.data_fit.plan_data_merge`.
    dead_tolerance : float, default=1e-6
    diagonal : bool, default=False
        Rebuild each kept channel from itself alone (``y_j ≈ b_j · x_j + c_j``): what a consumer
        that filters each channel on its own first (a SeparableConv's depthwise half) can absorb
        exactly. Removed channels are still rebuilt from every kept one.
    intercept : bool, default=True
        Fit ``c``; without it the map goes through the origin (``shift = 0``), which is what a
        zero-padding convolution absorbs exactly: its padded zeros stay zeros.

    Returns
    -------
    RefitMap

    Examples
    --------
    >>> import numpy as np
    >>> y = np.random.default_rng(0).normal(size=(500, 3))
    >>> y = np.column_stack([y, y[:, 0] + 2 * y[:, 1]])
    >>> fitted = fit_refit_map(0.5 * y, y, np.array([3]))   # the merged model halved every channel
    >>> np.round(fitted.beta, 4).tolist()
    [[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0], [2.0, 4.0, 0.0]]
    """
    return _fit_moments(_raw_moments(x, y), np.asarray(x).shape[1], remove, weights, ridge, dead_tolerance, diagonal,
                        intercept)


def _raw_moments(x, y):
    """``[x, y, 1]ᵀ [x, y, 1]`` in float64: every fit and error below needs only this."""
    a = np.concatenate([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                        np.ones((np.asarray(x).shape[0], 1))], axis=1)
    return a.T @ a


def _centered_moments(moments, n, intercept=True):
    count = moments[-1, -1]
    mean = moments[-1, :-1] / count
    if not intercept:  # second moments about 0: the fit goes through the origin
        mean = np.zeros_like(mean)
    cov = moments[:-1, :-1] / count - np.outer(mean, mean)
    return mean[:n], mean[n:], cov[:n, :n], cov[:n, n:], cov[n:, n:]


def _fit_moments(moments, n, remove, weights, ridge, dead_tolerance, diagonal, intercept=True):
    x_mean, y_mean, cxx, cxy, cyy = _centered_moments(moments, n, intercept)
    remove = np.asarray(remove, dtype=np.int64)
    keep = np.setdiff1d(np.arange(n), remove)
    live = keep[~_dead(cxx, x_mean, dead_tolerance)[keep]]
    beta = np.zeros((n, keep.size))
    beta[keep, np.arange(keep.size)] = 1.0
    columns = np.searchsorted(keep, live)
    if live.size:
        precision = _inverse(cxx, live, ridge)
        # Kept channels: fit the drift y - x (towards the identity); removed ones: fit y itself.
        cross = cxy[live].T.copy()  # (n, n_live): Cov(y_j, x_k)
        cross[keep] -= cxx[np.ix_(keep, live)]
        if diagonal:
            variance = np.diag(cxx)[live]
            beta[live, columns] += cross[live, np.arange(live.size)] / (variance * (1 + max(ridge, 1e-10)) + 1e-300)
            beta[remove[:, None], columns[None, :]] += cross[remove] @ precision
        else:
            beta[:, columns] += cross @ precision
    shift = y_mean - beta @ x_mean[keep]
    # Covariance of the residual y - B x_K (centered): Cyy - B Cxy_K - (B Cxy_K)ᵀ + B Cxx_KK Bᵀ.
    mixed = beta @ cxy[keep]
    residual = cyy - mixed - mixed.T + beta @ cxx[np.ix_(keep, keep)] @ beta.T
    variance = np.diag(cyy)[remove]
    r2 = np.where(variance > 1e-300, 1.0 - np.diag(residual)[remove] / np.maximum(variance, 1e-300), 1.0)
    lost, total = _weighted(residual, weights), _weighted(cyy, weights)
    return RefitMap(keep, remove, beta, shift, r2, lost / total if total > 0 else 0.0, float(ridge), bool(diagonal))


def _weighted(covariance, weights):
    """``tr(Wᵀ C W)`` (``tr(C)`` without weights): the consumers' squared input error from its covariance."""
    return float(np.trace(covariance) if weights is None else np.einsum("io,io->", weights, covariance @ weights))


def _held_out_error(fitted, moments, n, weights):
    """``Σ ‖(y − B x_K − c) W‖²`` over the rows whose raw moments are ``moments``."""
    inputs = np.concatenate([fitted.keep, [2 * n]])  # x_K and the constant
    outputs = np.arange(n, 2 * n)
    gamma = np.concatenate([fitted.beta, fitted.shift[:, None]], axis=1)  # (n, n_kept + 1)
    szy = moments[np.ix_(inputs, outputs)]
    mixed = gamma @ szy
    second = moments[np.ix_(outputs, outputs)] - mixed - mixed.T + gamma @ moments[np.ix_(inputs, inputs)] @ gamma.T
    return _weighted(second, weights)


def choose_refit_map(x, y, remove, *, weights=None, ridge=DEFAULT_RIDGE, diagonal_only=False, grid=RIDGE_GRID,
                     intercept=True):
    """:func:`fit_refit_map` with the ridge and the kind of map chosen by two-fold cross-validation.

    The candidates are the full map at ``ridge`` and at each ridge of ``grid``, and the diagonal
    map (each kept channel from itself) at ``ridge``. Each is fitted on one half of the rows and
    scored on the other (the rows are input-major, so the halves hold different inputs), both
    ways, by the error in the consumers' inputs; the best is fitted again on every row. With few
    rows per channel the full map over-fits and the diagonal one wins; with many, the full one.

    Parameters
    ----------
    x, y : ndarray of shape (n_rows, n)
    remove : ndarray of int
    weights : ndarray of shape (n, n_outputs), default=None
    ridge : float, default=1e-6
    diagonal_only : bool, default=False
        Only the diagonal map (a SeparableConv consumer).
    grid : tuple of float, default=RIDGE_GRID
    intercept : bool, default=True
        As for :func:`fit_refit_map`.

    Returns
    -------
    RefitMap
        ``ridge`` and ``diagonal`` say which candidate won.
    """
    candidates = [(float(ridge), True)]
    if not diagonal_only:
        candidates = [(float(ridge), False)] + [(float(r), False) for r in grid if r > ridge] + candidates
    n, half = np.asarray(x).shape[1], np.asarray(x).shape[0] // 2
    if len(candidates) == 1 or half < 2:
        ridge, diagonal = candidates[0]
        return fit_refit_map(x, y, remove, weights=weights, ridge=ridge, diagonal=diagonal, intercept=intercept)
    halves = [_raw_moments(x[:half], y[:half]), _raw_moments(x[half:], y[half:])]
    scores = []
    for candidate_ridge, diagonal in candidates:
        score = 0.0
        for train, test in ((0, 1), (1, 0)):
            fitted = _fit_moments(halves[train], n, remove, None, candidate_ridge, 1e-6, diagonal, intercept)
            score += _held_out_error(fitted, halves[test], n, weights)
        scores.append(score)
    ridge, diagonal = candidates[int(np.argmin(scores))]
    return _fit_moments(halves[0] + halves[1], n, remove, weights, ridge, 1e-6, diagonal, intercept)
