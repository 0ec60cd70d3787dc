"""Data-aware merging of attention heads, the numpy core: the layer's output rebuilt from the kept heads'.

A MultiHeadAttention's output is ``Y = Σ_h O_h W_o[h] + b`` where ``O_h`` (rows × value_dim) is head
``h``'s attention-weighted values and ``W_o[h]`` (value_dim × d) its rows of the output kernel. With
``X = [O_1 … O_H]`` (rows × H·value_dim) and ``W`` the output kernel as (H·value_dim, d), removing the
heads ``R`` loses their contribution ``X_R W_R``. The target ``Z`` is what the layer wrote before
(without its bias): ``Z = X W`` on the same model, or the original model's layer output on the same
inputs when earlier layers were merged already (a sequential refit, as for neurons). It is rebuilt from
the kept heads' outputs by ridge least squares with an intercept, fitted as a change of the kept rows
(the ridge shrinks towards ``W_K``)::

    Z ≈ X_K B + c        B = W_K + (C_KK + λ)⁻¹ (C_KZ − C_KK W_K),   c = μ_Z − μ_K B

and folded into the kept heads' output rows (``W_K ← B``, i.e. ``W_K += B − W_K``; ``b += c``). When
``Z = X W`` this is ``W_K`` plus the least-squares rebuild of the removed heads' contribution
``X_R W_R`` from ``X_K``. The heads to remove are chosen greedily, one at a time, by the error left in
``Z`` (``tr(Cov(Z − X_K B))``), recomputed exactly for every candidate (heads are few): the block
form of :mod:`weightkit.compress.merge.fitting.data_fit` (neurons are heads' value channels, the
consumer is the output projection), with its ridge inverse.

Everything is computed from the raw moments ``[X, Z, 1]ᵀ [X, Z, 1]``, accumulated batch by batch.
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
        Added to the kept heads' output kernel rows (``B − W_K``).
    bias_update : ndarray of shape (n_output,)
        Added to the output bias (``c``).
    r2 : ndarray of shape (n_removed,)
        Per removed head, the R² of its own contribution ``O_r W_o[r]`` rebuilt from the kept heads.
    error : float
        Fraction of the target's variance (``tr(C_ZZ)``) the plan leaves unexplained.
    """

    keep: np.ndarray
    remove: np.ndarray
    order: np.ndarray
    update: np.ndarray
    bias_update: np.ndarray
    r2: np.ndarray
    error: float


def head_moments(outputs, targets):
    """Raw moments ``[X, Z, 1]ᵀ [X, Z, 1]`` of head outputs and the layer's target output, to sum over batches.

    Parameters
    ----------
    outputs : ndarray of shape (..., heads, value_dim)
        Head outputs at any number of leading (sample, position) axes.
    targets : ndarray of shape (..., n_output)
        What the layer should write there, without its bias, at the same leading axes.

    Returns
    -------
    ndarray of shape (heads * value_dim + n_output + 1, heads * value_dim + n_output + 1), float64
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    x = outputs.reshape(-1, outputs.shape[-2] * outputs.shape[-1])
    z = np.asarray(targets, dtype=np.float64).reshape(x.shape[0], -1)
    a = np.concatenate([x, z, np.ones((x.shape[0], 1))], axis=1)
    return a.T @ a


class _Blocks:
    """Centered statistics of the head-output channels and the target, and the channel indices of each head."""

    def __init__(self, moments, output_kernel, ridge, dead_tolerance, intercept=True):
        heads, value_dim = output_kernel.shape[:2]
        self.heads, self.value_dim, self.ridge = heads, value_dim, ridge
        n = heads * value_dim
        moments = np.asarray(moments, dtype=np.float64)
        self.mean, self.target_mean, self.cov, self.cross, self.target_cov = _centered_moments(moments, n, intercept)
        self.weights = np.asarray(output_kernel, dtype=np.float64).reshape(n, -1)
        if self.cross.shape[1] != self.weights.shape[1]:
            raise WeightkitError(f"The moments hold {self.cross.shape[1]} target columns; the output kernel writes "
                                 f"{self.weights.shape[1]}.")
        std = np.sqrt(np.maximum(np.diag(self.cov), 0.0))
        self.live = std > dead_tolerance * np.maximum(1.0, np.abs(self.mean))

    def channels(self, heads, live_only=False):
        index = np.concatenate([np.arange(h * self.value_dim, (h + 1) * self.value_dim) for h in heads]
                               ) if len(heads) else np.zeros(0, dtype=np.int64)
        return index[self.live[index]] if live_only else index

    def target_variance(self):
        return float(np.trace(self.target_cov))

    def fit(self, kept):
        """``(B, the live kept channels, lost variance)`` of rebuilding the target from the ``kept`` heads.

        ``B`` is fitted as a change of the kept rows ``W_K`` (the ridge shrinks towards them, not towards 0).
        """
        regressors = self.channels(kept, live_only=True)
        if not regressors.size:
            return np.zeros((0, self.cross.shape[1])), regressors, self.target_variance()
        cov = self.cov[np.ix_(regressors, regressors)]
        w = self.weights[regressors]
        beta = w + _inverse(self.cov, regressors, self.ridge) @ (self.cross[regressors] - cov @ w)
        mixed = float(np.einsum("ko,ko->", self.cross[regressors], beta))  # tr(C_ZK B)
        lost = self.target_variance() - 2.0 * mixed + float(np.einsum("ko,ko->", beta, cov @ beta))
        return beta, regressors, max(lost, 0.0)

    def own_r2(self, kept, head):
        """R² of one head's contribution ``O_h W_o[h]`` (on this model) rebuilt from the kept heads."""
        index, regressors = self.channels([head]), self.channels(kept, live_only=True)
        w = self.weights[index]
        variance = float(np.einsum("io,io->", w, self.cov[np.ix_(index, index)] @ w))
        if variance <= 1e-300:
            return 1.0
        if not regressors.size:
            return 0.0
        cross = self.cov[np.ix_(regressors, index)] @ w
        explained = float(np.einsum("ko,ko->", cross, _inverse(self.cov, regressors, self.ridge) @ cross))
        return 1.0 - max(variance - explained, 0.0) / variance


def plan_heads_fit(moments, output_kernel, *, count=None, max_error=None, remove=None, ridge=DEFAULT_RIDGE,
                   dead_tolerance=1e-6, intercept=True):
    """Choose heads to remove and rebuild the layer's output from the kept heads' outputs.

    Parameters
    ----------
    moments : ndarray of shape (heads * value_dim + n_output + 1, heads * value_dim + n_output + 1)
        :func:`head_moments` summed over the calibration batches (head-major channels, then the target).
    output_kernel : ndarray of shape (heads, value_dim, *output)
        The layer's output kernel on the model the head outputs come from.
    count : int, default=None
        Remove this many heads (at most ``heads - 1``).
    max_error : float, default=None
        Instead: remove heads while at most this fraction of the target's variance is lost.
    remove : sequence of int, default=None
        Instead: remove exactly these heads (no search; at least one head kept), as a caller that chose
        them by another measure (:mod:`weightkit.compress.merge.heads_global`) does.
    ridge : float, default=1e-6
        Relative to each kept channel's variance (as :func:`weightkit.compress.merge.fitting.data_fit.plan_data_merge`).
    dead_tolerance : float, default=1e-6
        Channels whose standard deviation is below this (relative to ``max(1, |mean|)``) are no regressors.
    intercept : bool, default=True
        Fit ``c`` (into the output bias); False for a layer without biases: the fit goes through the
        origin (second moments about 0) and ``bias_update`` is zero.

    Returns
    -------
    HeadsFitPlan

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> outputs, kernel = rng.normal(size=(400, 3, 2)), rng.normal(size=(3, 2, 4))
    >>> outputs[:, 2] = 2.0 * outputs[:, 0]            # head 2 writes twice head 0's values
    >>> targets = np.einsum("nhv,hvd->nd", outputs, kernel)
    >>> plan = plan_heads_fit(head_moments(outputs, targets), kernel, count=1)
    >>> plan.remove.tolist() in ([0], [2]), round(plan.error, 6)
    (True, 0.0)
    """
    kernel = np.asarray(output_kernel, dtype=np.float64)
    if kernel.ndim < 3:
        raise WeightkitError(f"Expected an output kernel of shape (heads, value_dim, *output), got {kernel.shape}.")
    if sum(value is not None for value in (count, max_error, remove)) != 1:
        raise WeightkitError(f"Give exactly one of count, max_error or remove, got count={count}, "
                             f"max_error={max_error}, remove={remove}.")
    blocks = _Blocks(moments, kernel, ridge, dead_tolerance, intercept)
    total = blocks.target_variance()
    if remove is not None:
        removed = [int(h) for h in dict.fromkeys(remove)]
        if any(not 0 <= h < blocks.heads for h in removed) or len(removed) >= blocks.heads:
            raise WeightkitError(f"remove={list(remove)}: expected distinct head indices in [0, {blocks.heads}) "
                                 "that keep at least one head.")
        kept = [h for h in range(blocks.heads) if h not in removed]
        return _plan(blocks, kept, removed, blocks.fit(kept)[2], total)
    limit = blocks.heads - 1 if count is None else min(blocks.heads - 1, int(count))
    budget = None if max_error is None else float(max_error) * total
    kept, removed, lost = list(range(blocks.heads)), [], blocks.fit(range(blocks.heads))[2]
    while len(removed) < limit:
        costs = [blocks.fit([k for k in kept if k != h])[2] for h in kept]
        position = int(np.argmin(costs))  # ties: the lowest head index
        if budget is not None and costs[position] > budget * (1 + 1e-12) + 1e-300:
            break
        lost = costs[position]
        removed.append(kept.pop(position))
    return _plan(blocks, kept, removed, lost, total)


def _plan(blocks, kept, removed, lost, total):
    keep, remove = np.asarray(kept, dtype=np.int64), np.sort(np.asarray(removed, dtype=np.int64))
    columns = blocks.channels(kept)
    beta, regressors, _ = blocks.fit(kept)
    full = np.zeros((columns.size, blocks.weights.shape[1]))
    full[np.searchsorted(columns, regressors)] = beta
    update = full - blocks.weights[columns]
    bias = blocks.target_mean - blocks.mean[columns] @ full
    r2 = np.asarray([blocks.own_r2(kept, head) for head in remove])
    return HeadsFitPlan(keep, remove, np.asarray(removed, dtype=np.int64), update, bias, r2,
                        float(lost / total) if total > 0 else 0.0)
