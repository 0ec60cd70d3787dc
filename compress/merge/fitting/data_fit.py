"""Data-aware merging, the numpy core: rebuild removed neurons from kept ones on calibration data.

For each neuron ``j`` to remove, its activation is reconstructed from the kept neurons ``K`` of
the same layer by ridge-regularized least squares with an intercept::

    a_j ≈ Σ_k β_jk · a_k + c_j

and the reconstruction is folded into the consumer (``W_next[k] += β_jk · W_next[j]``,
``b_next += c_j · W_next[j]``; see :func:`fold_into_rows`). This acts on activations, so it
works for any activation function. A dead (constant) neuron is removed exactly with ``β = 0``
and ``c`` its constant.

Which neurons to remove: greedy backward elimination on the error the removal causes in the
consumer's input, recomputed exactly after every removal (no approximation beyond the ridge):
with ``z = A W`` the consumer's pre-activation (``W`` = ``output_weights``, identity when not
given, so the error is then the total squared reconstruction error of the layer), the best
linear prediction of ``z`` from the kept neurons loses, when neuron ``j`` is also dropped,
``‖coef_j‖² / P_jj`` where ``P`` is the (ridge) inverse covariance of the kept neurons and
``coef = P · Cov(A_K, z)`` the regression coefficients. Both are downdated in O(k·(k + o)) per
removal. The folded model reproduces exactly this prediction, so the greedy cost is the true
increase of the consumer's squared input error on the calibration sample.

This module is pure numpy; :mod:`compress` glue collects activations and edits the Keras model.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis.errors import WeightkitError

__all__ = ["DEFAULT_RIDGE", "DataMergePlan", "plan_data_merge"]

#: Ridge strength, relative to each kept neuron's own variance (scale-free). Small enough that an
#: exact linear relation is recovered to about 1e-6, large enough to keep duplicate or nearly
#: collinear kept neurons stable.
DEFAULT_RIDGE = 1e-6
_MIN_RIDGE = 1e-10  # used even for ridge=0: exact linear relations make the covariance singular
_REFRESH_EVERY = 32  # recompute P from scratch after this many downdates (bounds rounding drift)


@dataclass
class DataMergePlan:
    """Which neurons to remove and how to rebuild them from the kept ones.

    Attributes
    ----------
    keep : ndarray of shape (n_kept,), int
        Kept neuron indices, increasing.
    remove : ndarray of shape (n_removed,), int
        Removed neuron indices, increasing.
    beta : ndarray of shape (n_removed, n_kept), float64
        ``beta[i, k]``: weight of kept neuron ``keep[k]`` in the reconstruction of ``remove[i]``.
    intercept : ndarray of shape (n_removed,), float64
    r2 : ndarray of shape (n_removed,), float64
        Coefficient of determination of each reconstruction on the calibration sample
        (1 for a constant neuron, which is rebuilt exactly).
    dead : ndarray of shape (n_dead,), int
        Constant neurons on the sample (all of them, removed or not).
    order : ndarray of shape (n_removed,), int
        The removed neurons in the order the greedy search chose them.
    error : float
        Fraction of the consumer's input variance (``tr(Wᵀ C W)``) left unexplained by the plan.
    """

    keep: np.ndarray
    remove: np.ndarray
    beta: np.ndarray
    intercept: np.ndarray
    r2: np.ndarray
    dead: np.ndarray
    order: np.ndarray
    error: float

    @property
    def n_removed(self):
        return int(self.remove.size)

    def reconstruct(self, activations):
        """Rebuild the removed neurons' activations from the kept ones.

        Parameters
        ----------
        activations : ndarray of shape (n_samples, n_neurons)

        Returns
        -------
        ndarray of shape (n_samples, n_removed)
        """
        activations = np.asarray(activations, dtype=np.float64)
        return activations[:, self.keep] @ self.beta.T + self.intercept


def _check_activations(activations):
    array = np.asarray(activations)
    if array.ndim != 2:
        raise WeightkitError(
            f"Expected activations as a 2-D array of shape (n_samples, n_neurons), got {array.ndim}-D "
            f"array of shape {array.shape} instead."
        )
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise WeightkitError(
            f"Expected activations of at least 2 samples and 2 neurons, got shape {array.shape}; "
            "give more calibration samples."
        )
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise WeightkitError(f"Expected real activations, got dtype {array.dtype}.")
    array = np.asarray(array, dtype=np.float64)
    if not np.isfinite(array).all():
        raise WeightkitError("activations contain NaN or Inf; check the model and the calibration data.")
    return array


def _check_budget(n_neurons, ratio, max_error, n_remove):
    given = sum(value is not None for value in (ratio, max_error, n_remove))
    if given != 1:
        raise WeightkitError(
            f"Give exactly one of ratio, max_error or n_remove, got {given} (ratio={ratio}, "
            f"max_error={max_error}, n_remove={n_remove})."
        )
    if ratio is not None:
        ratio = float(ratio)
        if not 0.0 <= ratio < 1.0:
            raise WeightkitError(f"--ratio must be in [0, 1), got {ratio}; 0.5 removes half of each layer.")
        return min(n_neurons - 1, round(ratio * n_neurons)), None
    if n_remove is not None:
        n_remove = int(n_remove)
        if not 0 <= n_remove < n_neurons:
            raise WeightkitError(f"n_remove must be in [0, {n_neurons - 1}], got {n_remove}.")
        return n_remove, None
    max_error = float(max_error)
    if not 0.0 <= max_error <= 1.0:
        raise WeightkitError(
            f"--max-error must be in [0, 1] (fraction of the consumer's input variance lost), got {max_error}."
        )
    return n_neurons - 1, max_error


def plan_data_merge(activations, *, ratio=None, max_error=None, n_remove=None, output_weights=None,
                    ridge=DEFAULT_RIDGE, dead_tolerance=1e-6):
    """Choose neurons to remove and their least-squares reconstruction from the kept ones.

    Parameters
    ----------
    activations : array-like of shape (n_samples, n_neurons)
        Calibration activations of one layer (one sample per row; conv layers: one row per
        sampled input position).
    ratio : float in [0, 1), default=None
        Remove ``round(ratio * n_neurons)`` neurons (at most ``n_neurons - 1``).
    max_error : float in [0, 1], default=None
        Remove neurons while the fraction of the consumer's input variance left unexplained
        stays at most this.
    n_remove : int, default=None
        Remove exactly this many. Give exactly one of ``ratio``, ``max_error``, ``n_remove``.
    output_weights : array-like of shape (n_neurons, n_outputs), default=None
        The consumer's weights from each neuron (a Dense consumer's kernel; for other consumers,
        all weights leaving each neuron as one row). Removal costs are then measured in the
        consumer's pre-activations; identity (each neuron's own activation) when None.
    ridge : float, default=1e-6
        Ridge strength relative to each kept neuron's variance: the regression uses
        ``C_KK + ridge · diag(C_KK)``. At least 1e-10 is used even for 0: an exact linear
        relation between neurons makes ``C_KK`` singular.
    dead_tolerance : float, default=1e-6
        A neuron is constant when its standard deviation is at most
        ``dead_tolerance · max(1, |mean|)``. Constant neurons are removed first, at no cost.

    Returns
    -------
    DataMergePlan

    Notes
    -----
    Computed in float64 on centered activations (the intercept is the centering). The greedy
    cost of removing ``j`` is exact for the kept set at that step (see the module docstring); it
    is greedy, so the final set is not guaranteed optimal. Ties are broken by the lower index,
    so the plan is deterministic.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.random.default_rng(0).normal(size=(200, 3))
    >>> a = np.column_stack([a, a[:, 0] - 2 * a[:, 1] + 0.5])
    >>> plan = plan_data_merge(a, n_remove=1)
    >>> plan.remove.tolist(), (np.round(plan.beta, 4) + 0.0).tolist(), round(float(plan.intercept[0]), 4)
    ([3], [[1.0, -2.0, 0.0]], 0.5)
    """
    a = _check_activations(activations)
    n_neurons = a.shape[1]
    count, max_error = _check_budget(n_neurons, ratio, max_error, n_remove)
    weights = None
    if output_weights is not None:
        weights = np.asarray(output_weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[0] != n_neurons:
            raise WeightkitError(
                f"Expected output_weights of shape ({n_neurons}, n_outputs), got {weights.shape}."
            )
        if not np.isfinite(weights).all():
            raise WeightkitError("output_weights contain NaN or Inf.")
    if float(ridge) < 0:
        raise WeightkitError(f"ridge must be non-negative, got {ridge}.")
    return _plan(a, count, max_error, weights, float(ridge), float(dead_tolerance))


def _plan(a, count, max_error, weights, ridge, dead_tolerance):
    n_samples, n_neurons = a.shape
    mean = a.mean(axis=0)
    centered = a - mean
    cov = centered.T @ centered / n_samples
    std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    dead = np.flatnonzero(std <= dead_tolerance * np.maximum(1.0, np.abs(mean)))
    live = np.setdiff1d(np.arange(n_neurons), dead)

    # Dead neurons first (no cost), lowest index first.
    order = list(dead[:count])
    # Consumer-side cross covariance G = C W (identity: G = C) and total variance tr(Wᵀ C W).
    g_full = cov if weights is None else cov @ weights
    total = float(np.trace(cov) if weights is None else np.einsum("io,io->", weights, g_full))
    lost = 0.0
    kept = list(live)
    if len(order) < count and len(kept) > 1:
        greedy, lost = _greedy(cov, g_full, kept, count - len(order), max_error, total, ridge)
        order += greedy
    order = np.asarray(order, dtype=np.int64)
    remove = np.sort(order)
    keep = np.setdiff1d(np.arange(n_neurons), remove)
    beta, intercept, r2 = _fit(a, mean, cov, keep, remove, dead, ridge)
    error = lost / total if total > 0 else 0.0
    return DataMergePlan(keep=keep, remove=remove, beta=beta, intercept=intercept, r2=r2,
                         dead=dead.astype(np.int64), order=order, error=float(error))


def _inverse(cov, kept, ridge):
    block = cov[np.ix_(kept, kept)]
    diagonal = np.diag(block)
    regularized = block + np.diag(max(ridge, _MIN_RIDGE) * diagonal + 1e-300)
    try:
        return np.linalg.inv(regularized)
    except np.linalg.LinAlgError:  # only if a kept neuron had zero variance; they are excluded
        return np.linalg.pinv(regularized, hermitian=True)


def _greedy(cov, g_full, kept, count, max_error, total, ridge):
    """Backward elimination among live neurons; returns (removed in order, error added)."""
    kept = list(kept)
    chosen, lost = [], 0.0
    budget = None if max_error is None else max_error * total
    precision = _inverse(cov, kept, ridge)
    coef = precision @ g_full[kept]
    since_refresh = 0
    while len(chosen) < count and len(kept) > 1:
        diag = np.diag(precision)
        cost = np.einsum("ko,ko->k", coef, coef) / np.maximum(diag, 1e-300)
        position = int(np.argmin(cost))  # ties: first, i.e. the lowest neuron index (kept is sorted)
        if budget is not None and lost + cost[position] > budget * (1 + 1e-12) + 1e-300:
            break
        lost += float(cost[position])
        chosen.append(int(kept[position]))
        # Downdate P and coef for dropping `position` (Schur complement).
        column = precision[:, position].copy()
        pivot = column[position]
        others = np.arange(len(kept)) != position
        precision = precision[np.ix_(others, others)] - np.outer(column[others], column[others]) / pivot
        coef = coef[others] - np.outer(column[others], coef[position]) / pivot
        del kept[position]
        since_refresh += 1
        if since_refresh >= _REFRESH_EVERY and kept:
            precision = _inverse(cov, kept, ridge)
            coef = precision @ g_full[kept]
            since_refresh = 0
    return chosen, lost


def _fit(a, mean, cov, keep, remove, dead, ridge):
    n_removed = remove.size
    beta = np.zeros((n_removed, keep.size))
    intercept = np.zeros(n_removed)
    r2 = np.ones(n_removed)
    if n_removed == 0:
        return beta, intercept, r2
    dead_set = set(dead.tolist())
    live_removed = np.array([i for i, j in enumerate(remove) if j not in dead_set], dtype=np.int64)
    regressors = np.array([k for k in keep if k not in dead_set], dtype=np.int64)
    if live_removed.size and regressors.size:
        precision = _inverse(cov, regressors, ridge)
        b = cov[np.ix_(remove[live_removed], regressors)] @ precision  # (n_live_removed, n_regressors)
        columns = np.searchsorted(keep, regressors)
        beta[np.ix_(live_removed, columns)] = b
    intercept[:] = mean[remove] - beta @ mean[keep]
    if live_removed.size:
        targets = remove[live_removed]
        residual = a[:, targets] - (a[:, keep] @ beta[live_removed].T + intercept[live_removed])
        variance = np.diag(cov)[targets] * a.shape[0]
        r2[live_removed] = 1.0 - np.einsum("ij,ij->j", residual, residual) / np.maximum(variance, 1e-300)
    return beta, intercept, r2


def fold_into_rows(plan, rows, bias=None):
    """Fold a plan into a consumer whose inputs are the layer's neurons, one row per neuron.

    ``rows[keep] + betaᵀ · rows[remove]`` and ``bias + interceptᵀ · rows[remove]``: exactly
    what the consumer computes when the removed neurons are replaced by their reconstruction.

    Parameters
    ----------
    plan : DataMergePlan
    rows : array-like of shape (n_neurons, n_outputs)
        The consumer's weights from each neuron (a Dense consumer's kernel).
    bias : array-like of shape (n_outputs,), default=None
        The consumer's bias (zeros when None).

    Returns
    -------
    rows : ndarray of shape (n_kept, n_outputs)
    bias : ndarray of shape (n_outputs,)
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] != plan.keep.size + plan.remove.size:
        raise WeightkitError(
            f"Expected consumer rows of shape ({plan.keep.size + plan.remove.size}, n_outputs), "
            f"got {rows.shape}."
        )
    bias = np.zeros(rows.shape[1]) if bias is None else np.asarray(bias, dtype=np.float64)
    removed = rows[plan.remove]
    return rows[plan.keep] + plan.beta.T @ removed, bias + plan.intercept @ removed
