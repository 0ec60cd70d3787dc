"""``weightkit analyze`` on whole keras.applications models: wall time and peak memory.

Subjects (random weights, nothing downloaded): ``VGG16(weights=None)`` with its dense head
(fc1 is 4,096 neurons x 25,088 inputs) and ``ResNet50(weights=None)`` (53 conv layers, one
dense). Each is saved once as ``.keras``; then, each in a fresh process:

- ``load only``: ``analysis.load_model(path)`` (TensorFlow import plus the weights): the floor
  that every command pays;
- ``analyze --metric pearson`` and ``analyze --metric mad``: the installed command line
  (``python -m weightkit analyze PATH --metric M --json OUT --quiet``). Both metrics compute
  both matrices for every layer; the metric picks which one defines the groups.

Wall time and peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``) are printed,
then, for the largest layers, where the time goes: Pearson matrix, MAD matrix and the
complete-linkage clustering, timed separately in one more process.

Run: ``python benchmarks/bench_models.py`` (about 3 minutes on 2 cores; writes ~650 MB of
models to a temporary directory, removed afterwards).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = {"VGG16": "VGG16", "ResNet50": "ResNet50"}

_LOAD_ONLY = "from analysis import load_model; load_model({path!r})"

_LAYER_TIMES = """
import json, time
import numpy as np
from analysis import load_model
from analysis.groups import cluster_linkage
from analysis.matrices import _mad_matrix, _pearson_matrix
from analysis.model_analysis import collect_entries
model = load_model({path!r}).model
entries, _ = collect_entries(model)
_mad_matrix(np.ones((8, 8), dtype=np.float32))  # load the compiled kernel outside the timings
entries.sort(key=lambda e: e.n_neurons ** 2 * e.fan_in, reverse=True)
out = []
for entry in entries[:{top}]:
    rows = np.ascontiguousarray(entry.rows, dtype=np.float32)
    t0 = time.perf_counter(); pearson = _pearson_matrix(rows)
    t1 = time.perf_counter(); mad = _mad_matrix(rows)
    t2 = time.perf_counter(); cluster_linkage(pearson, "pearson")
    t3 = time.perf_counter()
    out.append([entry.name, entry.type, entry.n_neurons, entry.fan_in, t1 - t0, t2 - t1, t3 - t2])
    del pearson, mad, rows
print(json.dumps(out))
"""


def run_child(argv):
    """Run a child process; (wall seconds, peak RSS in MiB, exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return wall, usage.ru_maxrss / 1024, process.returncode, out.read().decode(), err.read().decode()


def build_and_save(name, directory):
    """Build keras.applications.<name>(weights=None) in a child process and save it."""
    path = os.path.join(directory, f"{name.lower()}.keras")
    code = (f"from analysis._tf import import_keras; keras = import_keras(); "
            f"keras.applications.{name}(weights=None).save({path!r})")
    wall, _, status, _, err = run_child([sys.executable, "-c", code])
    if status != 0:
        raise SystemExit(f"building {name} failed:\n{err}")
    return path, wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--top", type=int, default=3, help="Largest layers to break down per model.")
    parser.add_argument("--workdir", default=None, help="Where to save the models (default: a temporary dir).")
    args = parser.parse_args()

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; "
          f"load average {load}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as directory:
        header = f"{'model':<9} {'run':<26} {'wall s':>8} {'peak MiB':>9}  result"
        rows = []
        breakdowns = {}
        for name in args.models:
            path, build = build_and_save(name, directory)
            size = os.path.getsize(path) / 2**20
            print(f"{name}: built and saved in {build:.1f} s ({size:.0f} MiB .keras)", flush=True)
            wall, peak, status, _, err = run_child([sys.executable, "-c", _LOAD_ONLY.format(path=path)])
            rows.append((name, "load only", wall, peak, "ok" if status == 0 else f"exit {status}: {err[-200:]}"))
            for metric in ("pearson", "mad"):
                json_path = os.path.join(directory, f"{name}-{metric}.json")
                argv = [sys.executable, "-m", "weightkit", "analyze", path, "--metric", metric, "--json", json_path,
                        "--quiet"]
                wall, peak, status, _, err = run_child(argv)
                if status == 0:
                    with open(json_path) as handle:
                        document = json.load(handle)
                    layers = document["layers"]
                    result = (f"{len(layers)} entries, {len(document['skipped'])} skipped, "
                              f"{sum(len(layer['groups']) for layer in layers)} groups, "
                              f"{document['totals']['removable']} removable")
                else:
                    result = f"exit {status}: {err.strip()[-300:]}"
                rows.append((name, f"analyze --metric {metric}", wall, peak, result))
            wall, _, status, out, err = run_child(
                [sys.executable, "-c", _LAYER_TIMES.format(path=path, top=args.top)])
            breakdowns[name] = json.loads(out.strip().splitlines()[-1]) if status == 0 else err[-300:]
            os.remove(path)
        print()
        print(header)
        print("-" * len(header))
        for name, run, wall, peak, result in rows:
            print(f"{name:<9} {run:<26} {wall:>8.1f} {peak:>9.0f}  {result}")
        print()
        print(f"{'model':<9} {'largest entries':<30} {'neurons x fan-in':>17} {'pearson s':>10} {'mad s':>8} "
              f"{'linkage s':>10}")
        for name, entries in breakdowns.items():
            if isinstance(entries, str):
                print(f"{name:<9} failed: {entries}")
                continue
            for entry, kind, n, fan_in, pearson, mad, linkage in entries:
                print(f"{name:<9} {entry + ' (' + kind + ')':<30} {f'{n} x {fan_in}':>17} {pearson:>10.2f} "
                      f"{mad:>8.2f} {linkage:>10.2f}")
    print(f"load average after: {', '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
