"""Compiled kernel for the mean-absolute-difference matrix (numba).

Importing this module imports numba; :mod:`weightkit.analysis.numeric.matrices` does it lazily and falls back to
a numpy/scipy path when the import fails or ``WEIGHTKIT_NO_NUMBA=1`` is set.

How the kernel is fast
----------------------
MAD has no matrix-product form, so it is a plain triple loop; what matters is keeping both cores
and 8-wide float32 SIMD busy while touching memory as little as possible:

* The rows are taken in blocks of four. For each other row ``j`` (only ``j >= i``: the upper
  triangle, mirrored on write) the four running sums of ``|rows[i + r, k] - rows[j, k]|`` are
  kept in registers, so each element of row ``j`` loaded from memory serves four pairs.
* Long rows (the whole input above :data:`SMALL_BYTES`, e.g. VGG16's fc1 at 411 MB) no longer
  fit in cache, and four rows per pass would read the input from memory n / 4 times. There a
  group of 64 rows meets tiles of 64 partner rows one 512-column chunk at a time (both held in
  L2), with float64 partial sums per pair: the input is read n / 64 times. Measured here in CPU
  time: 13-14 G pair-elements per CPU-second tiled vs 9.5-10 four at a time on 4096 x 4608,
  and 12 vs 15 on 2048 x 1024 (which fits in cache), hence the switch.
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

__all__ = ["CHUNK", "GROUP_ROWS", "SERIAL_WORK", "SMALL_BYTES", "TILE_ROWS", "default_threads", "mad_into"]

#: Elements summed in float32 before the partial sum is added to a float64 total.
CHUNK = 512

#: Below this many element pairs (n * n * fan_in), one thread does the work.
SERIAL_WORK = 2**25

#: Above this size of the rows (bytes), the cache-tiled group kernel is used.
SMALL_BYTES = 8 * 2**20

#: Rows per group, and partner rows per tile, of the cache-tiled kernel: with CHUNK columns,
#: a group is 128 KiB and a tile 128 KiB, which two cores' L2 caches hold.
GROUP_ROWS = 64
TILE_ROWS = 64

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
def _group(x, out, g0, g1, chunk, tile):
    """MAD of rows g0..g1-1 against every row j >= g0, tiled for caches (long rows).

    For each chunk of columns, the group's rows and a tile of ``tile`` partner rows stay in
    cache while every block of four group rows meets every partner of the tile; the partial
    sums go to a float64 accumulator ``acc[j - g0, r]``. Each partner row is read from memory
    once per group instead of once per block of four.
    """
    n, d = x.shape
    rows = g1 - g0
    acc = np.zeros((n - g0, rows))
    n_chunks = (d + chunk - 1) // chunk
    full = g0 + (rows // 4) * 4
    for c in range(n_chunks):
        k0 = np.uint64(c * chunk)
        k1 = np.uint64(min(d, c * chunk + chunk))
        for j0 in range(g0, n, tile):
            j1 = min(n, j0 + tile)
            for i0 in range(g0, full, 4):
                r = i0 - g0
                for j in range(j0, j1):
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
                    q = j - g0
                    acc[q, r] += s0
                    acc[q, r + 1] += s1
                    acc[q, r + 2] += s2
                    acc[q, r + 3] += s3
            for i in range(full, g1):
                for j in range(j0, j1):
                    s = np.float32(0.0)
                    for k in range(k0, k1):
                        s += abs(x[i, k] - x[j, k])
                    acc[j - g0, i - g0] += s
    for q in range(n - g0):
        j = g0 + q
        for r in range(rows):
            value = acc[q, r] / d
            out[g0 + r, j] = value
            out[j, g0 + r] = value


@njit(fastmath=_FASTMATH, cache=True, nogil=True)
def _run_groups(x, out, starts, size, chunk, tile):
    """Groups of ``size`` rows starting at each of ``starts``, without the GIL."""
    n = x.shape[0]
    for g0 in starts:
        _group(x, out, g0, min(n, g0 + size), chunk, tile)


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


def _balanced(count):
    """0, count-1, 1, count-2, ...: neighbours in this order have equal work together."""
    order = np.empty(count, dtype=np.int64)
    order[0::2] = np.arange((count + 1) // 2)
    order[1::2] = count - 1 - np.arange(count // 2)
    return order


def _run_tasks(function, tasks, threads):
    tasks = [task for task in tasks if task.size]
    if threads == 1 or len(tasks) <= 1:
        for task in tasks:
            function(task)
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(function, tasks):
            pass


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

    Rows that fit in cache (the whole ``x`` within :data:`SMALL_BYTES`) go four at a time
    against each partner; larger ``x`` go through cache-tiled groups of :data:`GROUP_ROWS`
    rows, which read ``x`` from memory ``n / 64`` times instead of ``n / 4`` times.
    """
    n, d = x.shape
    threads = default_threads() if threads is None else max(1, int(threads))
    if n * n * d < SERIAL_WORK:  # a millisecond or so: starting threads would cost more
        threads = 1
    if x.nbytes > SMALL_BYTES and n >= 2 * GROUP_ROWS:
        starts = _balanced((n + GROUP_ROWS - 1) // GROUP_ROWS) * GROUP_ROWS
        _run_tasks(lambda task: _run_groups(x, out, task, GROUP_ROWS, chunk, TILE_ROWS),
                   np.array_split(starts, 4 * threads), threads)
        return
    full = n // 4
    order = _balanced(full)
    _run_tasks(lambda task: _run_blocks(x, out, task, chunk),
               np.array_split(order, 4 * threads) if full >= 8 else [order], threads)
    _run_rows(x, out, 4 * full, chunk)
