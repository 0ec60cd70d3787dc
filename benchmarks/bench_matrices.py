"""pearson_matrix and mad_matrix against their peers, on random float32 layers.

Peers, both the fastest found here (NOTES.md):

- Pearson: ``np.corrcoef(X)`` (float64);
- MAD: ``squareform(pdist(X, "cityblock")) / fan_in`` (scipy, float64, single-threaded).

For each size (neurons x fan-in) the script prints our time, the peer's time, the ratio
(peer / ours: above 1 means we are faster) and the largest error against the peer (absolute for
Pearson, relative for MAD). ``ours cpu`` is the CPU time of our run (both threads): near twice
the wall time when both cores were ours, near the wall time when other processes took one. Each time is the best of ``--repeat`` runs, ours and the peer's
interleaved so that both see the same load. The numpy fallback of MAD (``WEIGHTKIT_NO_NUMBA=1``)
is timed too on the smaller sizes. Then the numba kernel's start-up: importing numba, compiling
with an empty cache (a fresh ``NUMBA_CACHE_DIR``) and loading the compiled kernel from that cache,
each the first call of a fresh process.

Other processes compete for the CPU on a shared machine: the load average is printed with the
table. ``OPENBLAS_CORETYPE`` is left as found (printed).

Run: ``python benchmarks/bench_matrices.py`` (about 2 minutes on 2 idle cores).
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from scipy.spatial.distance import pdist, squareform  # noqa: E402

from weightkit.analysis.numeric.matrices import _mad_matrix_blocked, mad_backend, mad_matrix, pearson_matrix

# The three sizes, plus 4096 x 1024 where the Pearson goal is set.
SIZES = [(512, 512), (2048, 1024), (4096, 1024), (4096, 4608)]
FALLBACK_MAX_PAIRS = 2048 * 2048  # time the numpy fallback only up to this many pairs


def best_of(repeat, *functions):
    """Best wall time of each function over ``repeat`` interleaved rounds, its CPU time in that
    round (all threads of this process) and its last result."""
    times = [float("inf")] * len(functions)
    cpu = [0.0] * len(functions)
    results = [None] * len(functions)
    for _ in range(repeat):
        for index, function in enumerate(functions):
            start, start_cpu = time.perf_counter(), time.process_time()
            results[index] = function()
            elapsed = time.perf_counter() - start
            if elapsed < times[index]:
                times[index], cpu[index] = elapsed, time.process_time() - start_cpu
    return times, cpu, results


def mad_peer(rows):
    return squareform(pdist(rows, "cityblock")) / rows.shape[1]


def relative_error(values, reference):
    off = ~np.eye(reference.shape[0], dtype=bool)
    return float(np.max(np.abs(values[off] - reference[off]) / reference[off]))


_STARTUP = textwrap.dedent("""
    import time, numpy as np
    start = time.perf_counter()
    import numba
    imported = time.perf_counter()
    from weightkit.analysis.numeric.matrices import _mad_matrix_numba
    loaded = time.perf_counter()
    _mad_matrix_numba(np.ones((8, 8), dtype=np.float32))
    called = time.perf_counter()
    print(imported - start, loaded - imported, called - loaded)
""")


def kernel_startup():
    """(numba import, cold first call, warm first call) in seconds, each in a fresh process."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=root)
        runs = []
        for _ in range(2):
            output = subprocess.run([sys.executable, "-c", _STARTUP], env=env, check=True, capture_output=True,
                                    text=True).stdout
            runs.append([float(value) for value in output.split()])
    return runs[0][0], runs[0][1] + runs[0][2], runs[1][1] + runs[1][2]


def machine_line():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    import numba

    return (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores ({cpu}); "
            f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__} "
            f"({numba.config.NUMBA_NUM_THREADS} threads); OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')!r}; "
            f"load average {load}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="Runs per measurement; the best counts.")
    parser.add_argument("--sizes", nargs="*", default=None, metavar="NxD",
                        help="Sizes as neurons x fan-in, e.g. 2048x1024 (default: 512x512 2048x1024 4096x1024 4096x4608).")
    args = parser.parse_args()
    sizes = [tuple(int(part) for part in size.split("x")) for size in args.sizes] if args.sizes else SIZES

    print(machine_line())
    print(f"MAD backend: {mad_backend()}")
    mad_matrix(np.ones((8, 8), dtype=np.float32))  # compile or load the kernel outside the timings
    header = (f"{'matrix':<22} {'size':>11} {'ours s':>9} {'ours cpu':>9} {'peer s':>9} {'ratio':>7} "
              f"{'max error':>10}")
    print(header)
    print("-" * len(header))
    rng = np.random.default_rng(0)
    for n, fan_in in sizes:
        rows = rng.standard_normal((n, fan_in)).astype(np.float32)
        size = f"{n}x{fan_in}"
        # Small sizes take milliseconds: more rounds; the largest one round (the peer takes ~15 s).
        work = n * n * fan_in
        repeat = 1 if work > 2048 * 2048 * 1024 else args.repeat * 4 if work <= 512**3 else args.repeat
        (ours, peer), (ours_cpu, _), (r, reference) = best_of(repeat, lambda x=rows: pearson_matrix(x), lambda x=rows: np.corrcoef(x))
        error = float(np.max(np.abs(r - reference)))
        print(f"{'pearson vs corrcoef':<22} {size:>11} {ours:>9.3f} {ours_cpu:>9.3f} {peer:>9.3f} {peer / ours:>6.1f}x "
              f"{error:>10.1e}", flush=True)
        del r, reference
        (ours, peer), (ours_cpu, _), (mad, reference) = best_of(repeat, lambda x=rows: mad_matrix(x), lambda x=rows: mad_peer(x))
        error = relative_error(mad, reference)
        print(f"{'mad vs pdist':<22} {size:>11} {ours:>9.3f} {ours_cpu:>9.3f} {peer:>9.3f} {peer / ours:>6.1f}x "
              f"{error:>10.1e}", flush=True)
        if n * n <= FALLBACK_MAX_PAIRS:
            (fallback,), (fallback_cpu,), (values,) = best_of(repeat, lambda x=rows: _mad_matrix_blocked(x))
            error = relative_error(values, reference)
            print(f"{'mad numpy fallback':<22} {size:>11} {fallback:>9.3f} {fallback_cpu:>9.3f} {peer:>9.3f} "
                  f"{peer / fallback:>6.1f}x {error:>10.1e}", flush=True)
        del mad, reference
    numba_import, cold, warm = kernel_startup()
    print(f"numba kernel start-up (fresh processes): import numba {numba_import:.2f} s; first call compiling "
          f"with an empty cache {cold:.2f} s; first call loading the cache {warm:.2f} s")
    print(f"load average after: {', '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
