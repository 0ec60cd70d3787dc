"""Data-aware merging of attention heads, the numpy core: rebuild removed heads' output in the kept heads'.

A MultiHeadAttention's output is ``Y = Σ_h O_h W_o[h] + b`` where ``O_h`` (rows × value_dim) is head
``h``'s attention-weighted values and ``W_o[h]`` (value_dim × d) its rows of the output kernel. With
``X = [O_1 … O_H]`` (rows × H·value_dim) and ``W`` the output kernel as (H·value_dim, d), removing the
heads ``R`` loses their contribution ``Z_R = X_R W_R``. It is rebuilt from the kept heads' outputs by
ridge least squares with an intercept::

    Z_R ≈ X_K B + c        B = (C_KK + λ)⁻¹ C_KR W_R,   c = μ_R W_R − μ_K B

and folded into the kept heads' output rows (``W_K += B``, ``b += c``), so the rebuilt layer predicts
the whole ``Y`` as well as ``X_K`` can. The heads to remove are chosen greedily, one at a time, by
the error their removal leaves in ``Y`` (``tr(W_Rᵀ C_RR W_R) − tr(W_Rᵀ C_RK B)``), recomputed exactly
for every candidate (heads are few). It is the block form of
:mod:`weightkit.compress.merge.fitting.data_fit` (neurons are heads' value channels, the consumer is the
output projection) and uses its ridge inverse.

Everything is computed from the raw moments ``[X, 1]ᵀ [X, 1]``, accumulated batch by batch.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE, _inverse
from weightkit.compress.merge.fitting.refit_fit import _centered_moments

__all__ = ["HeadsFitPlan", "head_moments", "plan_heads_fit"]


@dataclass
class HeadsFitPlan:
    """Which heads to remove and the kept heads' output-kernel compensation.

    Attributes
    ----------
    keep, remove : ndarray of int
        Sorted head indices.
    order : ndarray of int
        The removed heads in the order the greedy search chose them.
    update : ndarray of shape (n_kept * value_dim, n_output)
        Added to the kept heads' output kernel rows (``B``).
    bias_update : ndarray of shape (n_output,)
        Added to the output bias (``c``).
    r2 : ndarray of shape (n_removed,)
        Per removed head, the R² of its own contribution ``O_r W_o[r]`` rebuilt from the kept heads.
    error : float
        Fraction of the layer's output variance (``tr(Wᵀ C W)``) the plan leaves unexplained.
    """

    keep: np.ndarray
    remove: np.ndarray
    order: np.ndarray
    update: np.ndarray
    bias_update: np.ndarray
    r2: np.ndarray
    error: float


def head_moments(outputs):
    """Raw moments ``[X, 1]ᵀ [X, 1]`` of head outputs, to sum over batches.

    Parameters
    ----------
    outputs : ndarray of shape (..., heads, value_dim)
        Head outputs at any number of leading (sample, position) axes.

    Returns
    -------
    ndarray of shape (heads * value_dim + 1, heads * value_dim + 1), float64
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    x = outputs.reshape(-1, outputs.shape[-2] * outputs.shape[-1])
    a = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    return a.T @ a


class _Blocks:
    """Centered statistics of the head-output channels and the channel indices of each head."""

    def __init__(self, moments, output_kernel, ridge, dead_tolerance):
        heads, value_dim = output_kernel.shape[:2]
        self.heads, self.value_dim, self.ridge = heads, value_dim, ridge
        n = heads * value_dim
        self.mean, _, self.cov, _, _ = _centered_moments(np.asarray(moments, dtype=np.float64), n)
        self.weights = np.asarray(output_kernel, dtype=np.float64).reshape(n, -1)
        std = np.sqrt(np.maximum(np.diag(self.cov), 0.0))
        self.live = std > dead_tolerance * np.maximum(1.0, np.abs(self.mean))

    def channels(self, heads, live_only=False):
        index = np.concatenate([np.arange(h * self.value_dim, (h + 1) * self.value_dim) for h in heads]
                               ) if len(heads) else np.zeros(0, dtype=np.int64)
        return index[self.live[index]] if live_only else index

    def variance(self, heads):
        """``tr(W_Hᵀ C_HH W_H)``: the variance the heads write into the output."""
        index = self.channels(heads)
        w = self.weights[index]
        return float(np.einsum("io,io->", w, self.cov[np.ix_(index, index)] @ w))

    def fit(self, kept, removed):
        """``(B over the live kept channels, those channels, lost variance)`` of rebuilding ``removed`` from ``kept``."""
        target = self.channels(removed)
        regressors = self.channels(kept, live_only=True)
        total = self.variance(removed)
        if not regressors.size or not target.size:
            return np.zeros((regressors.size, self.weights.shape[1])), regressors, total
        cross = self.cov[np.ix_(regressors, target)] @ self.weights[target]  # C_KR W_R
        beta = _inverse(self.cov, regressors, self.ridge) @ cross
        explained = float(np.einsum("ko,ko->", cross, beta))
        return beta, regressors, max(total - explained, 0.0)


def plan_heads_fit(moments, output_kernel, *, count=None, max_error=None, ridge=DEFAULT_RIDGE, dead_tolerance=1e-6):
    """Choose heads to remove and rebuild their output from the kept heads' outputs.

    Parameters
    ----------
    moments : ndarray of shape (heads * value_dim + 1, heads * value_dim + 1)
        :func:`head_moments` summed over the calibration batches (head-major channels).
    output_kernel : ndarray of shape (heads, value_dim, *output)
    count : int, default=None
        Remove this many heads (at most ``heads - 1``).
    max_error : float, default=None
        Instead: remove heads while at most this fraction of the output's variance is lost.
    ridge : float, default=1e-6
        Relative to each kept channel's variance (as :func:`weightkit.compress.merge.fitting.data_fit.plan_data_merge`).
    dead_tolerance : float, default=1e-6
        Channels whose standard deviation is below this (relative to ``max(1, |mean|)``) are no regressors.

    Returns
    -------
    HeadsFitPlan

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> outputs = rng.normal(size=(400, 3, 2))
    >>> outputs[:, 2] = 2.0 * outputs[:, 0]            # head 2 writes twice head 0's values
    >>> plan = plan_heads_fit(head_moments(outputs), rng.normal(size=(3, 2, 4)), count=1)
    >>> plan.remove.tolist() in ([0], [2]), round(plan.error, 6)
    (True, 0.0)
    """
    kernel = np.asarray(output_kernel, dtype=np.float64)
    if kernel.ndim < 3:
        raise WeightkitError(f"Expected an output kernel of shape (heads, value_dim, *output), got {kernel.shape}.")
    if (count is None) == (max_error is None):
        raise WeightkitError(f"Give exactly one of count or max_error, got count={count}, max_error={max_error}.")
    blocks = _Blocks(moments, kernel, ridge, dead_tolerance)
    heads = blocks.heads
    total = blocks.variance(range(heads))
    limit = heads - 1 if count is None else min(heads - 1, int(count))
    budget = None if max_error is None else float(max_error) * total
    kept, removed, lost = list(range(heads)), [], 0.0
    while len(removed) < limit:
        costs = [blocks.fit([k for k in kept if k != h], removed + [h])[2] for h in kept]
        position = int(np.argmin(costs))  # ties: the lowest head index
        if budget is not None and costs[position] > budget * (1 + 1e-12) + 1e-300:
            break
        lost = costs[position]
        removed.append(kept.pop(position))
    return _plan(blocks, kept, removed, lost, total)


def _plan(blocks, kept, removed, lost, total):
    keep, remove = np.asarray(kept, dtype=np.int64), np.sort(np.asarray(removed, dtype=np.int64))
    beta, regressors, _ = blocks.fit(kept, list(remove))
    n_output = blocks.weights.shape[1]
    update = np.zeros((keep.size * blocks.value_dim, n_output))
    update[np.searchsorted(blocks.channels(kept), regressors)] = beta
    kept_mean = blocks.mean[blocks.channels(kept)]
    bias = blocks.mean[blocks.channels(remove)] @ blocks.weights[blocks.channels(remove)] - kept_mean @ update
    r2 = []
    for head in remove:
        variance = blocks.variance([head])
        r2.append(1.0 - blocks.fit(kept, [head])[2] / variance if variance > 1e-300 else 1.0)
    return HeadsFitPlan(keep, remove, np.asarray(removed, dtype=np.int64), update, bias, np.asarray(r2),
                        float(lost / total) if total > 0 else 0.0)
