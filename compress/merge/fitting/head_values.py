"""Rebuild removed heads through the kept heads' value projections too, the numpy core.

The output-projection fit (:mod:`weightkit.compress.merge.fitting.heads`) rebuilds the layer's output
from the kept heads' outputs ``O_k`` as they are. But a kept head's output is ``O_k = U_k P_k + b_k``
where ``U_k = A_k V`` (rows × d_in) is its attention applied to the raw value input (the rows of
``A_k`` sum to 1, so the value bias ``b_k`` stays a constant) and ``P_k`` (d_in × value_dim) its value
kernel: the value kernel may change as well. The layer's output is then fitted as

    Z ≈ Σ_k (U_k P_k + b_k) Q_k + c        (k over the kept heads; Q_k the output kernel rows)

a bilinear least squares, solved by alternating the two linear halves (each step lowers the error):

- ``Q`` given ``P``: the output-projection fit itself, on the moments of ``O = [U P + b]``, which follow
  from those of ``U`` (``[O, Z, 1] = [U, Z, 1] T``, so ``Mₒ = Tᵀ M_U T``);
- ``P`` given ``Q``: one head at a time (the others fixed), the normal equations
  ``C_kk P_k G_k = C_kZ Q_kᵀ − Σ_{j≠k} C_kj P_j Q_j Q_kᵀ`` with ``G_k = Q_k Q_kᵀ``, solved through the
  eigenvectors of ``C_kk`` and ``G_k`` (a Kronecker system: ``O(d_in³ + value_dim³)`` per head), with
  a ridge that shrinks the change of ``P_k``.

It starts from the layer's own value kernels and the heads the output-projection fit removes, so it
can only lower that fit's error. The moments of ``U`` are ``(heads · d_in + n_output + 1)²``.
"""

import numpy as np

from weightkit.compress.merge.fitting.heads import plan_heads_fit
from weightkit.compress.merge.fitting.refit_fit import _centered_moments

__all__ = ["VALUE_ITERATIONS", "output_moments", "plan_value_refit"]

#: Alternations of the two halves (on the zoo's ViT the error stops moving after 3 to 5).
VALUE_ITERATIONS = 5


def output_moments(moments, value_kernels, value_bias):
    """The raw moments of ``[O, Z, 1]`` with ``O_h = U_h P_h + b_h``, from those of ``[U, Z, 1]``.

    Parameters
    ----------
    moments : ndarray of shape (heads * d_in + n_output + 1, heads * d_in + n_output + 1)
    value_kernels : ndarray of shape (d_in, heads, value_dim)
    value_bias : ndarray of shape (heads, value_dim) or None

    Returns
    -------
    ndarray of shape (heads * value_dim + n_output + 1, heads * value_dim + n_output + 1)
    """
    d_in, heads, value_dim = value_kernels.shape
    n_output = moments.shape[0] - heads * d_in - 1
    t = np.zeros((moments.shape[0], heads * value_dim + n_output + 1))
    for h in range(heads):
        t[h * d_in:(h + 1) * d_in, h * value_dim:(h + 1) * value_dim] = value_kernels[:, h]
        if value_bias is not None:
            t[-1, h * value_dim:(h + 1) * value_dim] = value_bias[h]
    t[heads * d_in:, heads * value_dim:] = np.eye(n_output + 1)
    return t.T @ moments @ t


def _value_step(cov, cross, kernels, outputs, kept, ridge):
    """``P`` given ``Q``, head by head: ``kernels`` (d_in, heads, value_dim) updated in place for the ``kept``."""
    d_in = kernels.shape[0]
    for k in kept:
        rows = slice(k * d_in, (k + 1) * d_in)
        q = outputs[k]  # (value_dim, n_output)
        rest = sum(cov[rows, j * d_in:(j + 1) * d_in] @ kernels[:, j] @ outputs[j] for j in kept if j != k)
        residual = (cross[rows] - rest - cov[rows, rows] @ kernels[:, k] @ q) @ q.T
        s1, e1 = np.linalg.eigh(cov[rows, rows])
        s2, e2 = np.linalg.eigh(q @ q.T)
        s1, s2 = np.maximum(s1, 0.0), np.maximum(s2, 0.0)
        scale = ridge * max(float(s1.mean() * s2.mean()), 1e-300)
        kernels[:, k] += e1 @ ((e1.T @ residual @ e2) / (np.outer(s1, s2) + scale)) @ e2.T


def plan_value_refit(moments, value_kernels, value_bias, output_kernel, *, count=None, max_error=None, remove=None,
                     ridge=1e-6, intercept=True, iterations=VALUE_ITERATIONS):
    """Choose heads as the output-projection fit does, then refit the kept heads' value and output kernels.

    Parameters
    ----------
    moments : ndarray of shape (heads * d_in + n_output + 1, heads * d_in + n_output + 1)
        :func:`weightkit.compress.merge.fitting.heads.head_moments` of ``U`` (each head's attention applied
        to the value input, (..., heads, d_in)) and the target, summed over the calibration batches.
    value_kernels : ndarray of shape (d_in, heads, value_dim)
    value_bias : ndarray of shape (heads, value_dim) or None
    output_kernel : ndarray of shape (heads, value_dim, *output)
    count, max_error, remove
        The budget, as :func:`weightkit.compress.merge.fitting.heads.plan_heads_fit` takes it.
    ridge : float, default=1e-6
        Relative, in both halves.
    intercept : bool, default=True
    iterations : int, default=5

    Returns
    -------
    plan : HeadsFitPlan
        The best output-projection fit (``update`` relative to the layer's own output kernel rows,
        ``error`` that of the whole refit); ``r2`` as the first fit measured it, on the kept heads' own
        values (how redundant each removed head is, not how the refit shared the error out).
    value_update : ndarray of shape (d_in, n_kept, value_dim)
        Added to the kept heads' value kernels.
    """
    kernels = np.asarray(value_kernels, dtype=np.float64).copy()
    bias = None if value_bias is None else np.asarray(value_bias, dtype=np.float64)
    output = np.asarray(output_kernel, dtype=np.float64)
    heads, value_dim = output.shape[:2]
    original = kernels.copy()
    budget = dict(count=count, max_error=max_error, remove=remove)
    plan = plan_heads_fit(output_moments(moments, kernels, bias), output, **budget, ridge=ridge, intercept=intercept)
    kept, first = plan.keep.tolist(), plan
    if not plan.remove.size:
        return plan, np.zeros((kernels.shape[0], len(kept), value_dim))
    n = heads * kernels.shape[0]
    _, _, cov, cross, _ = _centered_moments(np.asarray(moments, dtype=np.float64), n, intercept)
    best = (plan, kernels[:, kept].copy())
    for _ in range(int(iterations)):
        rows = output[kept].reshape(len(kept), value_dim, -1) + plan.update.reshape(len(kept), value_dim, -1)
        _value_step(cov, cross, kernels, dict(zip(kept, rows)), kept, ridge)
        plan = plan_heads_fit(output_moments(moments, kernels, bias), output, remove=plan.order.tolist(), ridge=ridge,
                              intercept=intercept)
        if plan.error < best[0].error:
            best = (plan, kernels[:, kept].copy())
    plan, fitted = best
    plan.r2 = first.r2
    return plan, fitted - original[:, kept]
