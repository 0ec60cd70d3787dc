"""Similarity matrices between neuron weight rows: Pearson correlation and mean absolute difference.

Pure numpy/scipy at the interface: these functions know nothing about Keras. ``rows`` is always a
2-D array of shape ``(n_neurons, fan_in)``, one neuron's weights per row.

Speed: Pearson is one symmetric float32 matrix product (BLAS ``ssyrk``, half the work of a general
product); MAD runs a compiled, multi-threaded kernel (:mod:`weightkit.analysis.numeric._mad_kernel`, numba) when
numba imports and ``WEIGHTKIT_NO_NUMBA`` is not set to ``1``, and a blocked scipy ``cdist``
otherwise. Both paths agree with the float64 references to about 1e-6.
"""

import os

import numpy as np
from scipy.linalg import blas
from scipy.spatial.distance import cdist, pdist, squareform

from weightkit.analysis.errors import WeightkitError

__all__ = ["DEFAULT_MEMORY_BUDGET", "check_rows", "mad_backend", "mad_matrix", "pearson_matrix"]

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of working memory beside the (n, n) result

_FLOAT32_MAX = float(np.finfo(np.float32).max)

# Above this magnitude the float32 kernel could overflow |a - b| or a chunk's partial sum
# (512 terms of up to 2 * 2**100); such rows go through the float64 scipy path instead.
_KERNEL_MAX_ABS = 2.0**100

# Side of the square tiles copied when mirroring a triangle.
_MIRROR_TILE = 128

_KERNEL = {}


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
        If ``rows`` is not 2-D, is empty, is not real numbers, holds NaN or Inf, or holds values
        beyond the float32 range.
    """
    try:
        array = np.asarray(rows)
    except (TypeError, ValueError) as error:
        raise WeightkitError(
            f"Expected {name} as a 2-D array of numbers, got {type(rows).__name__} that numpy cannot convert "
            f"({error}); give every row the same length."
        ) from error
    if array.ndim != 2:
        raise WeightkitError(
            f"Expected {name} as a 2-D array of shape (n_neurons, fan_in), got {array.ndim}-D "
            f"array of shape {array.shape} instead; reshape it with rows.reshape(n_neurons, -1)."
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise WeightkitError(
            f"Expected {name} with at least one neuron and one input, got shape {array.shape}."
        )
    if array.dtype.kind not in "biuf":  # booleans count as 0 and 1
        raise WeightkitError(f"Expected real numbers in {name}, got dtype {array.dtype}.")
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(converted).all():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise WeightkitError(
                f"{name} contain NaN or Inf; the Pearson and MAD matrices are undefined for them."
            )
        raise WeightkitError(
            f"{name} hold values beyond the float32 range (±3.4e38); rescale the weights first."
        )
    return converted


def mad_backend():
    """Which MAD implementation runs here: ``"numba"`` (compiled kernel) or ``"numpy"`` (scipy).

    Returns
    -------
    str
        ``"numpy"`` when numba cannot be imported or the environment variable
        ``WEIGHTKIT_NO_NUMBA`` is ``1``.
    """
    return "numba" if _kernel() is not None else "numpy"


def _kernel():
    """The compiled MAD kernel, or None where numba is missing or disabled."""
    if os.environ.get("WEIGHTKIT_NO_NUMBA", "") == "1":
        return None
    if "kernel" not in _KERNEL:
        try:
            import weightkit.analysis.numeric._mad_kernel as _mad_kernel  # numba compiles on import: only when the kernel runs
        except ImportError:  # numba missing or unable to load on this platform
            _KERNEL["kernel"] = None
        else:
            _KERNEL["kernel"] = _mad_kernel.mad_into
    return _KERNEL["kernel"]


def pearson_matrix(rows):
    """Pearson correlation between every pair of neuron rows.

    Parameters
    ----------
    rows : array-like of shape (n_neurons, fan_in)
        One neuron's weights per row.

    Returns
    -------
    r : ndarray of shape (n_neurons, n_neurons), dtype float32
        ``r[i, j]`` is the Pearson correlation of rows ``i`` and ``j``; exactly symmetric, in
        [-1, 1], with ones on the diagonal.

    Raises
    ------
    WeightkitError
        If ``rows`` is not a non-empty 2-D array of finite real numbers.

    See Also
    --------
    mad_matrix : mean absolute difference between rows.
    numpy.corrcoef : the float64 reference this agrees with to about 1e-6.

    Notes
    -----
    Each row is scaled by a power of two (exact) to a largest magnitude in [0.5, 1), centered and
    scaled to unit norm in float32, with means and norms accumulated in float64; then one
    symmetric float32 product (BLAS ``ssyrk``) gives the upper triangle, which is mirrored. No
    float64 copy of the weights is made: the working memory is one float32 copy of ``rows``.
    The power-of-two scaling keeps huge (1e38) and subnormal (1e-42) rows exact.

    A constant row (zero variance) has no defined correlation: it gets 0 against every other row
    and 1 with itself, never NaN. A row whose spread is at float32 rounding level of its own
    values (``std * sqrt(fan_in) <= eps32 * sqrt(fan_in) * max|row|``) counts as constant, since
    its correlations would be rounding noise.

    Examples
    --------
    >>> import numpy as np
    >>> r = pearson_matrix([[1.0, 2.0, 3.0], [2.0, 4.0, 6.5], [3.0, 2.0, 1.0]])
    >>> np.round(r.astype(float), 3).tolist()
    [[1.0, 0.998, -1.0], [0.998, 1.0, -0.998], [-1.0, -0.998, 1.0]]
    """
    return _pearson_matrix(check_rows(rows))


def _pearson_matrix(rows):
    n = rows.shape[0]
    unit = _unit_centered_rows(rows)
    # ssyrk on the Fortran-ordered view unit.T computes unit @ unit.T's upper triangle (i <= j)
    # in a Fortran-ordered result; its transpose is C-ordered with the lower triangle filled.
    r = blas.ssyrk(1.0, unit.T, trans=1, lower=0).T
    del unit
    _mirror_lower_to_upper(r)
    np.clip(r, -1.0, 1.0, out=r)
    r[np.diag_indices(n)] = 1.0
    return r


def _unit_centered_rows(rows):
    """Rows minus their mean, scaled to unit L2 norm, float32; constant rows become zero rows."""
    n, fan_in = rows.shape
    magnitude = np.maximum(rows.max(axis=1), -rows.min(axis=1))
    _, exponent = np.frexp(magnitude)  # magnitude = m * 2**exponent with m in [0.5, 1); 0 -> 0
    scale = np.ldexp(np.ones(n), -exponent.astype(np.int64))  # float64: 2**149 is fine here
    if scale.min() >= 2.0**-126 and scale.max() <= 2.0**126:
        unit = rows * scale.astype(np.float32)[:, None]  # exact: powers of two, normal range
    else:  # subnormal or near-overflow rows: ldexp scales exactly without an inf factor
        unit = np.ldexp(rows, (-exponent)[:, None])
    mean = unit.mean(axis=1, dtype=np.float64)
    unit -= mean.astype(np.float32)[:, None]
    norm = np.sqrt(np.einsum("ij,ij->i", unit, unit, dtype=np.float64))
    scaled_magnitude = (magnitude > 0).astype(np.float64)  # 0 or, after the scaling, in [0.5, 1)
    varying = norm > np.finfo(np.float32).eps * np.sqrt(fan_in) * scaled_magnitude
    inverse = np.zeros(n)
    inverse[varying] = 1.0 / norm[varying]
    unit *= inverse.astype(np.float32)[:, None]
    return unit


def _mirror_lower_to_upper(matrix):
    """Copy the lower triangle of a square C-ordered matrix onto its upper one, tile by tile.

    Square tiles keep both the rows read and the rows written in cache: on a 4096 x 4096
    matrix this is about twice as fast as copying whole transposed strips.
    """
    n = matrix.shape[0]
    tile = _MIRROR_TILE
    for start in range(0, n, tile):
        stop = min(n, start + tile)
        for column in range(stop, n, tile):
            end = min(n, column + tile)
            matrix[start:stop, column:end] = matrix[column:end, start:stop].T
        square = matrix[start:stop, start:stop]
        upper = np.triu_indices(stop - start, 1)
        square[upper] = square.T[upper]


def mad_matrix(rows, *, memory_budget=DEFAULT_MEMORY_BUDGET):
    """Mean absolute difference between every pair of neuron rows.

    Parameters
    ----------
    rows : array-like of shape (n_neurons, fan_in)
        One neuron's weights per row.
    memory_budget : int, default=256 MiB
        Bytes of working memory allowed beside the result. The compiled kernel needs almost none;
        the numpy fallback compares rows in blocks that fit (at least one pair of rows at a time).

    Returns
    -------
    mad : ndarray of shape (n_neurons, n_neurons), dtype float32
        ``mad[i, j] = mean_k |rows[i, k] - rows[j, k]|``; exactly symmetric, non-negative, zero
        diagonal.

    Raises
    ------
    WeightkitError
        If ``rows`` is not a non-empty 2-D array of finite real numbers, or ``memory_budget`` is
        not a positive number of bytes.

    See Also
    --------
    pearson_matrix : scale- and shift-invariant similarity between rows.
    scipy.spatial.distance.cdist : ``cdist(rows, rows, "cityblock") / fan_in`` is the reference.

    Notes
    -----
    Unlike Pearson, MAD is in the units of the weights: a row and a positively scaled copy of it
    are far apart. No ``(n, n, fan_in)`` temporary is ever built.

    The compiled kernel (numba) sums ``|a - b|`` in float32 over chunks of 512 elements and adds
    the chunks in float64, so the relative error stays near 1e-6 for any fan_in. Rows with
    values beyond 2**100 go through the float64 scipy path instead; a MAD beyond the largest
    float32 (weights near ±3e38) saturates at it. Set ``WEIGHTKIT_NO_NUMBA=1`` to force the
    scipy path (single-threaded, about 8-10x slower on two cores).

    Examples
    --------
    >>> mad_matrix([[0.0, 1.0], [1.0, 3.0]]).tolist()
    [[0.0, 1.5], [1.5, 0.0]]
    """
    try:
        budget = int(memory_budget)
    except (TypeError, ValueError):
        budget = 0
    if budget <= 0 or isinstance(memory_budget, bool):
        raise WeightkitError(
            f"memory_budget: expected a positive number of bytes, got {memory_budget!r}; "
            "the default is 256 MiB (268435456)."
        )
    return _mad_matrix(check_rows(rows), budget)


#: Below this many pair-elements (``n * n * fan_in``) scipy's exact float64 path takes a few
#: milliseconds, less than importing numba and loading the compiled kernel (0.5 s or more): a
#: small model's analysis never pays for the kernel.
_SMALL_WORK = 1 << 24


def _mad_matrix(rows, memory_budget=DEFAULT_MEMORY_BUDGET):
    if rows.shape[0] * rows.shape[0] * rows.shape[1] <= _SMALL_WORK:
        return _mad_matrix_blocked(rows, memory_budget)
    kernel = _kernel()
    if kernel is None or max(float(rows.max()), -float(rows.min())) > _KERNEL_MAX_ABS:
        return _mad_matrix_blocked(rows, memory_budget)
    return _mad_matrix_numba(rows, kernel)


def _mad_matrix_numba(rows, kernel=None):
    """MAD through the compiled kernel; ``rows`` finite float32.

    The kernel's float32 chunk sums need values within 2**100; beyond that (or without numba)
    the exact float64 blocked path answers instead of overflowing to inf.
    """
    fill = kernel if kernel is not None else _kernel()
    if fill is None or max(float(rows.max()), -float(rows.min())) > _KERNEL_MAX_ABS:
        return _mad_matrix_blocked(rows)
    n = rows.shape[0]
    out = np.empty((n, n), dtype=np.float32)
    fill(np.ascontiguousarray(rows, dtype=np.float32), out)
    return out


def _mad_matrix_blocked(rows, memory_budget=DEFAULT_MEMORY_BUDGET):
    """MAD through scipy's float64 ``cdist`` on blocks of the upper triangle, within the budget.

    The rows are converted to float64 once when that copy takes at most half the budget;
    otherwise each block converts its own rows. A block pair of ``b`` rows costs at most
    ``8 * (2 * b * fan_in + 1.5 * b * b)`` bytes.
    """
    n, fan_in = rows.shape
    out = np.empty((n, n), dtype=np.float32)
    whole = n * fan_in * 8 <= memory_budget // 2
    rows64 = rows.astype(np.float64) if whole else None
    # 64 KiB kept aside for the small arrays and headers around the blocks.
    available = memory_budget - (n * fan_in * 8 if whole else 0) - 65536
    # Largest b with 8 * (2 b fan_in + 1.5 b^2) <= available (a diagonal block holds pdist's
    # condensed b^2 / 2 values and their square form), by the quadratic formula.
    b = int((-2 * fan_in + np.sqrt(4.0 * fan_in * fan_in + 12.0 * max(available, 0) / 16.0)) / 3.0)
    block = max(1, min(n, b))
    if not whole:  # two float64 buffers, refilled in place: no third block while converting
        a_buffer = np.empty((block, fan_in))
        c_buffer = np.empty((block, fan_in))
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        if whole:
            a = rows64[i0:i1]
        else:
            a = a_buffer[: i1 - i0]
            np.copyto(a, rows[i0:i1])
        for j0 in range(i0, n, block):
            j1 = min(n, j0 + block)
            if whole:
                c = rows64[j0:j1]
            elif j0 == i0:
                c = a
            else:
                c = c_buffer[: j1 - j0]
                np.copyto(c, rows[j0:j1])
            # A diagonal block through pdist: each pair once, as the peer does.
            values = squareform(pdist(a, "cityblock")) if j0 == i0 else cdist(a, c, "cityblock")
            values /= fan_in
            np.minimum(values, _FLOAT32_MAX, out=values)
            out[i0:i1, j0:j1] = values
            out[j0:j1, i0:i1] = values.T
            del values  # before the next cdist allocates its block
    np.fill_diagonal(out, 0.0)
    return out
