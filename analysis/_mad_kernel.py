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
* The compiled loops release the GIL and Python threads (one per core) share the blocks;
  block ``b`` has ``n - 4 b`` partners, so blocks are paired first with last for equal work.
  Plain threads instead of ``prange``: compiling is about half as long (no parfor passes) and
  no OpenMP/TBB threading layer is involved, so callers on any thread are safe.
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

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

__all__ = ["CHUNK", "default_threads", "mad_into"]

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


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _run_blocks(x, out, blocks, chunk):
    """Blocks of four rows ``4 b .. 4 b + 3`` for each ``b`` in ``blocks``, without the GIL."""
    for b in blocks:
        _block_of_four(x, out, 4 * b, chunk)


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _run_rows(x, out, start, chunk):
    """Single rows ``start .. n - 1``: the last n % 4 rows."""
    for i in range(start, x.shape[0]):
        _single_row(x, out, i, chunk)


def default_threads():
    """Threads to use: numba's thread count (the cores, or ``NUMBA_NUM_THREADS``)."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def mad_into(x, out, *, chunk=CHUNK, threads=None):
    """Fill ``out`` with the MAD matrix of ``x`` on ``threads`` threads.

    Parameters
    ----------
    x : ndarray of shape (n, d), float32, C-contiguous, finite
    out : ndarray of shape (n, n), float32, C-contiguous
        Every entry is written: ``out[i, j] = out[j, i] = mean_k |x[i, k] - x[j, k]|``.
    chunk : int, default=CHUNK
        Elements summed in float32 before going to the float64 total.
    threads : int, default=None
        :func:`default_threads` when None.

    Notes
    -----
    The compiled loops release the GIL, so plain Python threads run them in parallel. Block
    ``b`` has ``n - 4 b`` partners: blocks are ordered first, last, second, second to last, ...
    and cut into ``4 * threads`` contiguous tasks of nearly equal work that the threads take
    as they come free (a busy core on a shared machine then delays little).
    """
    n = x.shape[0]
    full = n // 4
    threads = default_threads() if threads is None else max(1, int(threads))
    order = np.empty(full, dtype=np.int64)
    order[0::2] = np.arange((full + 1) // 2)
    order[1::2] = full - 1 - np.arange(full // 2)
    if threads == 1 or full < 8:
        _run_blocks(x, out, order, chunk)
    else:
        tasks = [task for task in np.array_split(order, 4 * threads) if task.size]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for _ in pool.map(lambda task: _run_blocks(x, out, task, chunk), tasks):
                pass
    _run_rows(x, out, 4 * full, chunk)
