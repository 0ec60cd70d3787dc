"""Benchmark: recurrent layers as TFLite's fused ops against the unrolled (or rolled) conversion.

For a small LSTM classifier (16 units, 2 features, a synthetic sequence task: does the first
feature's second half sum above its first half; at 200 steps, within the last 16 steps) trained at
8 and at 200 steps, and a SimpleRNN at 200 steps: each mode converted fused (``convert_modes``' default)
and unrolled (the recurrent layers cloned with ``unroll=True``, the path before fusing; at 200 steps
forced past the 64-step limit for the comparison), with file size, export-and-conversion time,
agreement with Keras and accuracy on the test split, mean |output difference| and the median latency
of one invoke at batch 1.

Run: ``python benchmarks/bench_quantize_fused.py`` (a few minutes on 2 cores; ``--quick`` for a
smoke run).
"""

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

MODES = ("float32", "dynamic", "float16", "int8", "int8-io")


def synthetic_sequences(steps, n, window=None, seed=0):
    """Class 1 when the first feature's second half sums above its first half, over the last ``window`` steps."""
    from weightkit.analysis.data.datasets import Dataset

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, 2)).astype("float32")
    window = window or steps
    tail = x[:, steps - window:, 0]
    y = (tail[:, window // 2:].sum(1) > tail[:, :window // 2].sum(1)).astype("int64")
    cut = int(0.8 * n)
    return Dataset(x[:cut], y[:cut], x[cut:], y[cut:], f"synthetic sequences ({steps} steps)", "classification")


def trained(keras, layer, data, epochs, path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(data.x_train.shape[1:], name="series"), layer,
                              keras.layers.Dense(2, activation="softmax", name="probs")])
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    model.save(path)
    return keras.saving.load_model(path)


def unrolled_conversions(model, modes, representative):
    """The pre-fusing path: recurrent layers unrolled, SavedModel export, one conversion per mode."""
    from weightkit.compress.quantize.convert import convert_mode, exported_saved_model
    from weightkit.compress.quantize.unroll import unrolled_copy

    start = time.perf_counter()
    copy = unrolled_copy(model)
    with exported_saved_model(copy) as (directory, error):
        if directory is None:
            raise RuntimeError(error)
        conversions = [convert_mode(mode, saved_model_dir=directory, keras_model=copy, representative=representative,
                                    select_tf_ops=False) for mode in modes]
    return conversions, time.perf_counter() - start


def fused_conversions(model, modes, calibration):
    from weightkit.compress.quantize import keras_source
    from weightkit.compress.quantize.convert import convert_modes

    start = time.perf_counter()
    conversions = convert_modes(keras_source(model), list(modes), calibration=calibration, calibration_samples=200)
    return conversions, time.perf_counter() - start


def measure(conversion, data, reference):
    from weightkit.compress.quantize import TFLiteModel

    if not conversion.ok:
        return {"mode": conversion.mode, "error": conversion.error}
    tflite = TFLiteModel(conversion.content)
    outputs = tflite.predict(data.x_test)
    return {"mode": conversion.mode, "converter": conversion.converter, "bytes": len(conversion.content),
            "agreement": float(np.mean(outputs.argmax(1) == reference.argmax(1))),
            "accuracy": float(np.mean(outputs.argmax(1) == data.y_test)),
            "mad": float(np.abs(outputs - reference).mean()), "latency": tflite.latency_ms(data.x_test[:1], 50)}


def subject_rows(name, model, data, modes, paths):
    from weightkit.compress.quantize.convert import representative_dataset

    reference = model.predict(data.x_test, verbose=0)
    accuracy = float(np.mean(reference.argmax(1) == data.y_test))
    rows, seconds = [], {}
    if "fused" in paths:
        conversions, seconds["fused"] = fused_conversions(model, modes, data.x_train)
        rows += [("fused", measure(c, data, reference)) for c in conversions]
    if "unrolled" in paths:
        conversions, seconds["unrolled"] = unrolled_conversions(model, modes, representative_dataset(data.x_train, 200))
        rows += [("unrolled", measure(c, data, reference)) for c in conversions]
    return name, accuracy, rows, seconds


def print_table(subjects):
    print("| model | path | mode | bytes | accuracy | agreement | mean abs diff | ms/invoke @1 |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for name, accuracy, rows, _ in subjects:
        print(f"| {name} | Keras | — | — | {accuracy:.4f} | — | — | — |")
        for path, row in rows:
            if "error" in row:
                print(f"| {name} | {path} | {row['mode']} | failed | — | — | — | — |")
                continue
            print(f"| {name} | {path} | {row['mode']} | {row['bytes']:,} | {row['accuracy']:.4f} | "
                  f"{row['agreement']:.4f} | {row['mad']:.1e} | {row['latency']:.3f} |")
    print()
    for name, _, rows, seconds in subjects:
        for path, total in seconds.items():
            count = sum(1 for p, _ in rows if p == path)
            print(f"- {name}, {path}: {total:.1f} s to export and convert {count} modes")
        for path, row in rows:
            if "error" in row:
                print(f"- {name}, {path}, {row['mode']}: {row['error']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs and modes: a smoke run")
    parser.add_argument("--skip-long-unrolled", action="store_true",
                        help="skip the 200-step unrolled conversions (the slow part)")
    args = parser.parse_args()
    import tempfile

    from weightkit.analysis._tf import import_keras

    keras = import_keras()
    modes = ("float32", "int8") if args.quick else MODES
    short_epochs, long_epochs = (2, 1) if args.quick else (15, 6)
    folder = tempfile.mkdtemp(prefix="bench-fused-")
    start = time.perf_counter()
    short = synthetic_sequences(8, 1200)
    long = synthetic_sequences(200, 600, window=16)
    subjects = [
        subject_rows("LSTM(16), 8 steps", trained(keras, keras.layers.LSTM(16, name="lstm"), short, short_epochs,
                                                   os.path.join(folder, "lstm8.keras")), short, modes,
                     ("fused", "unrolled")),
        subject_rows("LSTM(16), 200 steps", trained(keras, keras.layers.LSTM(16, name="lstm"), long, long_epochs,
                                                     os.path.join(folder, "lstm200.keras")), long, modes,
                     ("fused",) if args.skip_long_unrolled else ("fused", "unrolled")),
        subject_rows("SimpleRNN(16), 200 steps",
                     trained(keras, keras.layers.SimpleRNN(16, name="rnn"), long, long_epochs,
                             os.path.join(folder, "rnn200.keras")), long, ("float32", "dynamic", "float16"),
                     ("fused",)),
    ]
    print(f"## Fused recurrent ops vs unrolling ({platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f} at the end; {time.strftime('%Y-%m-%d')})\n")
    print_table(subjects)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
