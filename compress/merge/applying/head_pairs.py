"""Exact duplicate attention heads, the numpy core: when head ``j`` writes what head ``i`` writes.

Head ``h`` of a MultiHeadAttention attends with the scores ``(x W_q[h] + b_q[h]) (y W_k[h] + b_k[h])ᵀ``
(scaled by the same ``1/√key_dim`` for every head): a bilinear form of the query and key inputs,
``[x, 1] M_h [y, 1]ᵀ`` with ``M_h = [W_q[h]; b_q[h]] [W_k[h]; b_k[h]]ᵀ`` of shape (d+1, d+1). Two heads
with the same form attend identically on every input, under any mask. When, besides, head ``j``'s
values are a linear map of head ``i``'s (``[W_v[j]; b_v[j]] = [W_v[i]; b_v[i]] A``, A of shape
(value_dim, value_dim); a copy has ``A = I``, a scaled copy ``A = αI``), its output is ``O_j = O_i A``
and its contribution folds exactly into head ``i``'s output rows::

    W_o[i] += A W_o[j]      and head j goes.

Everything here reads the layer's arrays under its kind's keys (``query_kernel`` (d, heads, key_dim),
``query_bias`` (heads, key_dim), ..., ``output_kernel`` (heads, value_dim, *output)).
"""

from dataclasses import dataclass

import numpy as np

__all__ = ["EXACT_TOLERANCE", "HeadFold", "attention_form", "head_fold", "value_map"]

#: Relative difference below which two heads' attention forms (and value maps) count as equal: float32
#: weights copied exactly differ by 0; a fold is exact to about this times the output's scale.
EXACT_TOLERANCE = 1e-5


@dataclass
class HeadFold:
    """Head ``removed`` folded into head ``keeper``.

    Attributes
    ----------
    removed, keeper : int
    value_map : ndarray of shape (value_dim, value_dim)
        ``A``: the removed head's values are the keeper's times ``A``.
    alpha : float
        ``A``'s mean diagonal (the scale of a scaled copy).
    form_difference : float
        Relative difference of the two attention forms.
    value_residual : float
        Relative residual of the value map.
    """

    removed: int
    keeper: int
    value_map: np.ndarray
    alpha: float
    form_difference: float
    value_residual: float


def _with_bias(arrays, name, head):
    kernel = np.asarray(arrays[f"{name}_kernel"], dtype=np.float64)[:, head, :]
    bias = arrays.get(f"{name}_bias")
    bias = np.zeros(kernel.shape[1]) if bias is None else np.asarray(bias, dtype=np.float64)[head]
    return np.vstack([kernel, bias[None, :]])  # (d + 1, dim)


def attention_form(arrays, head):
    """``M_h``, shape (d + 1, d + 1): the bilinear form of head ``head``'s attention scores (bias row last)."""
    return _with_bias(arrays, "query", head) @ _with_bias(arrays, "key", head).T


def value_map(arrays, keeper, removed):
    """``(A, relative residual)`` of the least-squares ``[W_v; b_v][removed] ≈ [W_v; b_v][keeper] A``."""
    source, target = _with_bias(arrays, "value", keeper), _with_bias(arrays, "value", removed)
    a = np.linalg.lstsq(source, target, rcond=None)[0]
    scale = max(float(np.linalg.norm(target)), 1e-300)
    return a, float(np.linalg.norm(source @ a - target)) / scale


def head_fold(arrays, keeper, removed, tolerance=EXACT_TOLERANCE):
    """``(HeadFold, None)`` when head ``removed`` folds exactly into ``keeper``, else ``(None, reason)``.

    Parameters
    ----------
    arrays : dict of str to ndarray
        The layer's arrays (see the module docstring).
    keeper, removed : int
    tolerance : float, default=EXACT_TOLERANCE

    Returns
    -------
    fold : HeadFold or None
    reason : str or None
        Why not, in one line.
    """
    form_keeper, form_removed = attention_form(arrays, keeper), attention_form(arrays, removed)
    scale = max(float(np.linalg.norm(form_keeper)), float(np.linalg.norm(form_removed)), 1e-300)
    difference = float(np.linalg.norm(form_keeper - form_removed)) / scale
    if difference > tolerance:
        return None, (f"its attention pattern differs from head {keeper}'s (query-key form differs by "
                      f"{difference:.2g}, relative): only heads that attend alike fold by weights; try --mode data")
    mapping, residual = value_map(arrays, keeper, removed)
    if residual > tolerance:
        return None, (f"it attends like head {keeper} but its values are no linear map of head {keeper}'s "
                      f"(residual {residual:.2g}); try --mode data")
    alpha = float(np.trace(mapping)) / mapping.shape[0]
    return HeadFold(int(removed), int(keeper), mapping, alpha, difference, residual), None
