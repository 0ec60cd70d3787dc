"""``weightkit analyze`` straight from the file (weightkit.analysis.files.stored) against what Keras needs: wall time and peak memory.

Three parts, each printed as ratios measured in one run (every measurement in a fresh process;
peak resident memory is ``ru_maxrss`` of that child, from ``os.wait4``):

- ``small``: the digits MLP (64-256-256-10, trained 5 epochs on scikit-learn's digits), saved as
  ``.keras``: ``python -m weightkit analyze PATH --quiet`` against ``python -c "import tensorflow"``
  (median of 3 runs each). Goals: under 1 s, under a fifth of the import.
- ``apps``: ``keras.applications`` VGG16, ResNet50, MobileNetV2 (``weights=None``: random weights,
  nothing downloaded), each saved once: Keras' load alone (``weightkit.analysis.load_model``) against the
  whole-model analysis (``weightkit analyze --json``), which never imports TensorFlow. Goals:
  analysis at most 1.5x the load, peak RSS under 1.5 GiB.
- ``giant``: a synthetic model of ``--giant-layers`` Dense layers with 8192 x 4096 kernels (4096
  neurons of fan-in 8192, 33.6 M parameters each, as parallel branches of one input; 30 layers make
  1.007 B), its ``.keras`` written directly with h5py and zipfile (about 4 GB; nothing of it in
  memory at once), then analyzed: peak RSS, the time per
  layer, and the time projected for a 7-billion-parameter model of such layers. Goal: peak RSS
  under 2 GiB. The file is deleted afterwards.

Run: ``python benchmarks/bench_models.py [--parts small apps giant] [--workdir DIR]``. ``small``
takes about a minute, ``apps`` a few minutes, ``giant`` depends on the machine (check free disk).
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

APPS = ("VGG16", "ResNet50", "MobileNetV2")
GiB = 2**30
CPU_SECONDS = []

_LOAD_ONLY = "from analysis import load_model; load_model({path!r}, compile=False)"

_DIGITS_MLP = """
from sklearn.datasets import load_digits
from weightkit.analysis._tf import import_keras
keras = import_keras()
keras.utils.set_random_seed(0)
x, y = load_digits(return_X_y=True)
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                          keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10, activation="softmax")],
                         name="digits_mlp")
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x / 16.0, y, epochs=5, verbose=0)
model.save({path!r})
"""

# Whole-model analysis in one process, timing each entry through the progress callback.
_TIMED_ANALYSIS = """
import json, resource, sys, time
from weightkit.analysis import analyze
marks = []
result = analyze({path!r}, progress=lambda done, total, name: marks.append((time.perf_counter(), done, name)))
imported = sorted(n for n in sys.modules if n.split(".")[0] in ("tensorflow", "keras"))
times = [[marks[i][2], marks[i + 1][0] - marks[i][0]] for i in range(len(marks) - 1)]
print(json.dumps({{"entries": len(result.layers), "params": result.total_params, "times": times,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "imported": imported}}))
"""


def run_child(argv):
    """Run a child process; (wall seconds, peak RSS in MiB, exit status, stdout, stderr).

    The child's CPU seconds (user + system), less sensitive to a busy machine than wall time, are
    kept in ``CPU_SECONDS[-1]``.
    """
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        CPU_SECONDS.append(usage.ru_utime + usage.ru_stime)
        out.seek(0)
        err.seek(0)
        return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode()


def _checked(argv, what):
    wall, peak, status, out, err = run_child(argv)
    if status != 0:
        raise SystemExit(f"{what} failed (exit {status}):\n{err[-2000:]}")
    return wall, peak, out


def _analyze_argv(path, json_path):
    return [sys.executable, "-m", "weightkit", "analyze", path, "--json", json_path, "--force", "--quiet"]


def bench_small(directory):
    path = os.path.join(directory, "digits_mlp.keras")
    _checked([sys.executable, "-c", _DIGITS_MLP.format(path=path)], "training the digits MLP")
    json_path = os.path.join(directory, "digits.json")
    tf, tf_cpu, runs, cpu = [], [], [], []
    for _ in range(3):  # interleaved, so that both see the same load
        tf.append(_checked([sys.executable, "-c", "import tensorflow"], "import tensorflow"))
        tf_cpu.append(CPU_SECONDS[-1])
        runs.append(_checked(_analyze_argv(path, json_path), "analyze"))
        cpu.append(CPU_SECONDS[-1])
    tf_wall, wall = statistics.median(t[0] for t in tf), statistics.median(r[0] for r in runs)
    print(f"small: digits MLP ({os.path.getsize(path) / 1024:.0f} KiB .keras), median of 3")
    print(f"  python -c 'import tensorflow'   {tf_wall:6.2f} s wall {statistics.median(tf_cpu):6.2f} s CPU "
          f"{statistics.median(t[1] for t in tf):6.0f} MiB")
    print(f"  weightkit analyze               {wall:6.2f} s wall {statistics.median(cpu):6.2f} s CPU "
          f"{statistics.median(r[1] for r in runs):6.0f} MiB")
    print(f"  ratio analyze / import tensorflow: {wall / tf_wall:.2f} wall, "
          f"{statistics.median(cpu) / statistics.median(tf_cpu):.2f} CPU (goal < 0.2); goal wall < 1 s: "
          f"{'met' if wall < 1 else 'missed'}", flush=True)


def bench_apps(directory, names):
    print(f"{'model':<12} {'run':<22} {'wall s':>8} {'CPU s':>7} {'peak MiB':>9}  result")
    for name in names:
        path = os.path.join(directory, f"{name.lower()}.keras")
        build = (f"from weightkit.analysis._tf import import_keras; keras = import_keras(); "
                 f"keras.applications.{name}(weights=None).save({path!r})")
        _checked([sys.executable, "-c", build], f"building {name}")
        load_wall, load_peak, _ = _checked([sys.executable, "-c", _LOAD_ONLY.format(path=path)], f"loading {name}")
        load_cpu = CPU_SECONDS[-1]
        json_path = os.path.join(directory, f"{name}.json")
        wall, peak, _ = _checked(_analyze_argv(path, json_path), f"analyzing {name}")
        cpu = CPU_SECONDS[-1]
        with open(json_path) as handle:
            document = json.load(handle)
        result = (f"{len(document['layers'])} entries, {len(document['skipped'])} skipped, "
                  f"{document['totals']['params']:,} params")
        print(f"{name:<12} {'Keras load only':<22} {load_wall:>8.1f} {load_cpu:>7.1f} {load_peak:>9.0f}")
        print(f"{name:<12} {'analyze (from file)':<22} {wall:>8.1f} {cpu:>7.1f} {peak:>9.0f}  {result}")
        print(f"{name:<12} ratio analyze / load {wall / load_wall:.2f} wall, {cpu / load_cpu:.2f} CPU (goal <= 1.5); peak "
              f"{peak / 1024:.2f} GiB (goal < 1.5)", flush=True)
        os.remove(path)


def write_giant(path, layers, fan_in=8192, units=4096, seed=0):
    """A Functional model of ``layers`` Dense(units) branches on one Input(fan_in), saved as .keras without Keras.

    Every layer's kernel is ``(fan_in, units)`` (the issue's "Dense 8192 x 4096"): parallel branches
    keep the model valid for Keras with all layers the same size. The weights file is written
    layer by layer with h5py as Keras 3 lays it out (``layers/<name>/vars/0, 1``, the layer's name
    in ``vars``'s ``name`` attribute), then stored uncompressed into the archive, as Keras writes
    it; random normal weights, 1024 kernel rows in memory at a time.
    """
    import zipfile

    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    tensor = {"class_name": "__keras_tensor__",
              "config": {"shape": [None, fan_in], "dtype": "float32", "keras_history": ["input", 0, 0]}}
    entries = [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": "input",
                "config": {"batch_shape": [None, fan_in], "dtype": "float32", "sparse": False, "ragged": False,
                           "name": "input", "optional": False}, "inbound_nodes": []}]
    for index in range(layers):
        entries.append({"module": "keras.layers", "class_name": "Dense", "registered_name": None,
                        "name": f"dense_{index}", "build_config": {"input_shape": [None, fan_in]},
                        "inbound_nodes": [{"args": [tensor], "kwargs": {}}],
                        "config": {"name": f"dense_{index}", "trainable": True, "dtype": "float32", "units": units,
                                   "activation": "relu", "use_bias": True, "kernel_initializer": "glorot_uniform",
                                   "bias_initializer": "zeros", "kernel_regularizer": None, "bias_regularizer": None,
                                   "kernel_constraint": None, "bias_constraint": None, "quantization_config": None}})
    config = {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
              "config": {"name": "giant", "trainable": True, "layers": entries,
                         "input_layers": [["input", 0, 0]],
                         "output_layers": [[f"dense_{index}", 0, 0] for index in range(layers)]}}
    weights = path + ".weights.h5"
    with h5py.File(weights, "w") as handle:
        handle.create_group("layers/input_layer/vars").attrs["name"] = "input"
        for index in range(layers):
            group = handle.create_group(f"layers/{'dense' if index == 0 else f'dense_{index}'}/vars")
            group.attrs["name"] = f"dense_{index}"
            kernel = group.create_dataset("0", (fan_in, units), dtype="float32")
            for start in range(0, fan_in, 1024):
                kernel[start:start + 1024] = rng.standard_normal((min(1024, fan_in - start), units), dtype=np.float32)
            group.create_dataset("1", data=np.zeros(units, dtype=np.float32))
    metadata = {"keras_version": "3.15.1", "date_saved": "2026-12-01@00:00:00"}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(config))
        archive.write(weights, "model.weights.h5")
    os.remove(weights)
    return layers * (fan_in + 1) * units


def bench_giant(directory, layers):
    path = os.path.join(directory, "giant.keras")
    start = time.perf_counter()
    params = write_giant(path, layers)
    size = os.path.getsize(path)
    print(f"giant: {layers} Dense layers 8192 x 4096, {params:,} parameters, {size / GiB:.2f} GiB .keras "
          f"(written in {time.perf_counter() - start:.0f} s)", flush=True)
    try:
        wall, peak, out = _checked([sys.executable, "-c", _TIMED_ANALYSIS.format(path=path)], "analyzing giant")
    finally:
        os.remove(path)
    report = json.loads(out.strip().splitlines()[-1])
    times = [seconds for _, seconds in report["times"]]
    per_layer = statistics.median(times)
    per_param = wall / params
    print(f"  analyze: {wall:.0f} s wall, peak RSS {peak / 1024:.2f} GiB (goal < 2), TensorFlow/Keras imported: "
          f"{report['imported'] or 'none'}")
    print(f"  per layer (33.6 M params, 4096 neurons x 8192): median {per_layer:.1f} s, min {min(times):.1f} s, "
          f"max {max(times):.1f} s")
    print(f"  projected for 7 B parameters of such layers: {7e9 * per_param / 60:.0f} min "
          f"({7e9 / params:.1f}x this model)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="*", default=["small", "apps"], choices=["small", "apps", "giant"])
    parser.add_argument("--models", nargs="*", default=list(APPS), choices=list(APPS))
    parser.add_argument("--giant-layers", type=int, default=30, help="Dense layers of the synthetic model.")
    parser.add_argument("--workdir", default=None, help="Where to save the models (default: a temporary dir).")
    args = parser.parse_args()

    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores; "
          f"load average {load}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as directory:
        if "small" in args.parts:
            bench_small(directory)
        if "apps" in args.parts:
            bench_apps(directory, args.models)
        if "giant" in args.parts:
            bench_giant(directory, args.giant_layers)
    print(f"load average after: {', '.join(f'{value:.1f}' for value in os.getloadavg())}")


if __name__ == "__main__":
    main()
