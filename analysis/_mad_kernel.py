"""Compiled kernel for the mean-absolute-difference matrix (numba).

Importing this module imports numba; :mod:`analysis.matrices` does it lazily and falls back to
a numpy/scipy path when the import fails or ``WEIGHTKIT_NO_NUMBA=1`` is set.

How the kernel is fast
----------------------
MAD has no matrix-product form, so it is a plain triple loop; what matters is keeping both cores
and 8-wide float32 SIMD busy while touching memory as little as possible:

* The rows are taken in blocks of four. For each other row ``j`` (only ``j >= i``: the upper
  triangle, mirrored on write) the four running sums of ``|rows[i + r, k] - rows[j, k]|`` are
  kept in registers, so each element of row ``j`` loaded from memory serves four pairs.
* ``prange`` spreads the blocks over the cores. Block ``b`` has ``n - 4 b`` partners, so the
  blocks are dealt in pairs ``(p, last - p)`` to give every parallel iteration the same work.
* ``fastmath`` with re-association lets LLVM vectorize the four float32 reductions (8 lanes,
  several partial sums each). Finite-math flags are *not* used: inputs are checked finite, but
  ``|a - b|`` of two huge float32 values may still overflow and must stay ``inf``, not poison.

Precision
---------
float32 sums lose accuracy on long rows (VGG16's first dense layer has fan_in 25,088), so the
inner reduction runs over chunks of :data:`CHUNK` elements in float32 and the chunk sums are
added in float64; each float32 partial sum then holds at most a few dozen positive terms, which
bounds its relative error near 1e-6 whatever the fan_in. The loop index is unsigned so that
numba emits no negative-index wrap-around check, which would otherwise stop vectorization.
"""

import numpy as np
from numba import njit, prange

__all__ = ["CHUNK", "mad_upper_kernel"]

#: Elements summed in float32 before the partial sum is added to a float64 total.
CHUNK = 512

# Re-association and contraction, without the no-NaN/no-Inf assumptions of fastmath=True.
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _block_of_four(x, out, i0, chunk):
    """MAD of rows i0..i0+3 against every row j >= i0, written to out[i, j] and out[j, i]."""
    n, d = x.shape
    n_chunks = (d + chunk - 1) // chunk
    for j in range(i0, n):
        t0 = 0.0
        t1 = 0.0
        t2 = 0.0
        t3 = 0.0
        for c in range(n_chunks):
            k0 = np.uint64(c * chunk)
            k1 = np.uint64(min(d, c * chunk + chunk))
            s0 = np.float32(0.0)
            s1 = np.float32(0.0)
            s2 = np.float32(0.0)
            s3 = np.float32(0.0)
            for k in range(k0, k1):
                w = x[j, k]
                s0 += abs(x[i0, k] - w)
                s1 += abs(x[i0 + 1, k] - w)
                s2 += abs(x[i0 + 2, k] - w)
                s3 += abs(x[i0 + 3, k] - w)
            t0 += s0
            t1 += s1
            t2 += s2
            t3 += s3
        t0 /= d
        t1 /= d
        t2 /= d
        t3 /= d
        out[i0, j] = t0
        out[i0 + 1, j] = t1
        out[i0 + 2, j] = t2
        out[i0 + 3, j] = t3
        out[j, i0] = t0
        out[j, i0 + 1] = t1
        out[j, i0 + 2] = t2
        out[j, i0 + 3] = t3


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _single_row(x, out, i, chunk):
    """MAD of row i against every row j >= i (the last rows when n is not a multiple of 4)."""
    n, d = x.shape
    n_chunks = (d + chunk - 1) // chunk
    for j in range(i, n):
        t = 0.0
        for c in range(n_chunks):
            k0 = np.uint64(c * chunk)
            k1 = np.uint64(min(d, c * chunk + chunk))
            s = np.float32(0.0)
            for k in range(k0, k1):
                s += abs(x[i, k] - x[j, k])
            t += s
        t /= d
        out[i, j] = t
        out[j, i] = t


@njit(fastmath=_FASTMATH, cache=True, parallel=True)
def mad_upper_kernel(x, out, chunk):
    """Fill ``out`` with the MAD matrix of ``x``.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32, C-contiguous, finite
    out : ndarray of shape (n, n), float32, C-contiguous
        Every entry is written: ``out[i, j] = out[j, i] = mean_k |x[i, k] - x[j, k]|``.
    chunk : int
        Elements summed in float32 before going to the float64 total (:data:`CHUNK`).
    """
    n = x.shape[0]
    full = n // 4
    pairs = (full + 1) // 2
    for p in prange(pairs):
        first = np.int64(p)
        _block_of_four(x, out, 4 * first, chunk)
        last = np.int64(full) - 1 - first
        if last != first:
            _block_of_four(x, out, 4 * last, chunk)
    for i in range(4 * full, n):
        _single_row(x, out, i, chunk)
