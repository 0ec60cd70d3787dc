"""Similarity matrices between neuron weight rows: Pearson correlation and mean absolute difference.

Pure numpy/scipy: these functions know nothing about Keras. ``rows`` is always a 2-D array of
shape ``(n_neurons, fan_in)``, one neuron's weights per row.
"""

import numpy as np
from scipy.spatial.distance import cdist

from .errors import WeightkitError

__all__ = ["pearson_matrix", "mad_matrix", "check_rows"]

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of working memory beside the (n, n) result


def check_rows(rows, *, name="rows"):
    """Validate neuron rows and return them as a C-contiguous float32 array.

    Parameters
    ----------
    rows : array-like of shape (n_neurons, fan_in)
        One neuron's weights per row.
    name : str, default="rows"
        What to call the array in error messages.

    Returns
    -------
    rows : ndarray of shape (n_neurons, fan_in), dtype float32

    Raises
    ------
    WeightkitError
        If ``rows`` is not 2-D, is empty, or holds NaN or Inf.
    """
    array = np.asarray(rows)
    if array.ndim != 2:
        raise WeightkitError(
            f"Expected {name} as a 2-D array of shape (n_neurons, fan_in), got {array.ndim}-D "
            f"array of shape {array.shape} instead; reshape it with rows.reshape(n_neurons, -1)."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise WeightkitError(
            f"Expected {name} with at least one neuron and one input, got shape {array.shape}."
        )
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise WeightkitError(f"Expected real numbers in {name}, got dtype {array.dtype}.")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
        raise WeightkitError(
            f"{name} contain NaN or Inf; the Pearson and MAD matrices are undefined for them."
        )
    return array


def pearson_matrix(rows):
    """Pearson correlation between every pair of neuron rows.

    Parameters
    ----------
    rows : array-like of shape (n_neurons, fan_in)
        One neuron's weights per row.

    Returns
    -------
    r : ndarray of shape (n_neurons, n_neurons), dtype float32
        ``r[i, j]`` is the Pearson correlation of rows ``i`` and ``j``; symmetric, in [-1, 1],
        with ones on the diagonal.

    See Also
    --------
    mad_matrix : mean absolute difference between rows.
    numpy.corrcoef : the float64 reference this agrees with to about 1e-6.

    Notes
    -----
    One float32 matrix product of centered, unit-norm rows; means and norms are accumulated in
    float64 without copying the weights to float64. A constant row (zero variance) has no
    defined correlation: we report 0 against every other row and 1 with itself, never NaN.

    Examples
    --------
    >>> import numpy as np
    >>> r = pearson_matrix([[1.0, 2.0, 3.0], [2.0, 4.0, 6.5], [3.0, 2.0, 1.0]])
    >>> np.round(r, 3).tolist()
    [[1.0, 0.999, -1.0], [0.999, 1.0, -0.999], [-1.0, -0.999, 1.0]]
    """
    return _pearson_matrix(check_rows(rows))


def _pearson_matrix(rows):
    n = rows.shape[0]
    unit = _unit_centered_rows(rows)
    r = unit @ unit.T
    np.clip(r, -1.0, 1.0, out=r)
    r[np.diag_indices(n)] = 1.0
    # Exact symmetry: a float32 product can differ in the last bit between r[i, j] and r[j, i].
    upper = np.triu_indices(n, 1)
    r[upper[1], upper[0]] = r[upper]
    return r


def _unit_centered_rows(rows):
    """Rows minus their mean, scaled to unit L2 norm; constant rows become zero rows."""
    mean = rows.mean(axis=1, dtype=np.float64).astype(np.float32)
    centered = rows - mean[:, None]
    norm = np.sqrt(np.einsum("ij,ij->i", centered, centered, dtype=np.float64))
    scale = np.zeros_like(norm)
    # A row whose spread is at float32 rounding level of its values is constant in practice.
    magnitude = np.abs(rows).max(axis=1).astype(np.float64)
    tiny = np.finfo(np.float32).eps * np.sqrt(rows.shape[1]) * np.maximum(magnitude, 1e-30)
    varying = norm > tiny
    scale[varying] = 1.0 / norm[varying]
    centered *= scale.astype(np.float32)[:, None]
    return centered


def mad_matrix(rows, *, memory_budget=DEFAULT_MEMORY_BUDGET):
    """Mean absolute difference between every pair of neuron rows.

    Parameters
    ----------
    rows : array-like of shape (n_neurons, fan_in)
        One neuron's weights per row.
    memory_budget : int, default=256 MiB
        Bytes of working memory allowed beside the result; rows are compared in blocks that fit.

    Returns
    -------
    mad : ndarray of shape (n_neurons, n_neurons), dtype float32
        ``mad[i, j] = mean_k |rows[i, k] - rows[j, k]|``; symmetric, non-negative, zero diagonal.

    See Also
    --------
    pearson_matrix : scale- and shift-invariant similarity between rows.
    scipy.spatial.distance.cdist : ``cdist(rows, rows, "cityblock") / fan_in`` is the reference.

    Notes
    -----
    Unlike Pearson, MAD is in the units of the weights: a row and a positively scaled copy of it
    are far apart. No ``(n, n, fan_in)`` temporary is ever built.

    Examples
    --------
    >>> mad_matrix([[0.0, 1.0], [1.0, 3.0]]).tolist()
    [[0.0, 1.5], [1.5, 0.0]]
    """
    if int(memory_budget) <= 0:
        raise WeightkitError(f"memory_budget must be a positive number of bytes, got {memory_budget}.")
    return _mad_matrix(check_rows(rows), int(memory_budget))


def _mad_matrix(rows, memory_budget=DEFAULT_MEMORY_BUDGET):
    n, fan_in = rows.shape
    out = np.empty((n, n), dtype=np.float32)
    # cdist works in float64: a block of b rows costs b * fan_in * 8 bytes plus b * n * 8 out.
    block = max(1, min(n, memory_budget // (8 * (fan_in + n) + 1)))
    rows64 = rows.astype(np.float64) if n * fan_in * 8 <= memory_budget else None
    reference = rows64 if rows64 is not None else rows
    for start in range(0, n, block):
        stop = min(n, start + block)
        chunk = reference[start:stop]
        out[start:stop] = cdist(chunk, reference, "cityblock") / fan_in
    np.fill_diagonal(out, 0.0)
    out = np.minimum(out, out.T)  # exact symmetry
    return out
