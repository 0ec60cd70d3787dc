"""Benchmark for ``weightkit quantize`` (one run, prints markdown tables for the README).

1. Batched LiteRT evaluation (input resized to a batch, one ``invoke()`` per batch) against a
   loop of one ``invoke()`` per sample, on 1,000 samples: time and speed ratio (goal ≥ 10×).
   The ratio is (per-invoke overhead + compute) / compute: large for tiny models, near 1 for big ones.
2. The full comparison table for a digits CNN trained here (scikit-learn digits, no download).
3. The comparison table for ``keras.applications.MobileNetV2(weights=None)``: no data, so
   agreement and output error on random inputs only.
4. One table of every mode (TFLite, keras-int8/int4/float8, onnx, mixed) for the digits CNN and a
   small LSTM trained on a synthetic sequence task, and the CNN's per-layer sensitivity chart
   (``docs/images/quantize_sensitivity_cnn.png``).
5. ``--only-rest``: variable-length inputs fixed to the data, int16x8 where TF's own 16x8 quantizer
   fails (token ids; a GRU's recurrent bias) and per-layer sensitivity in int8/int4/int16x8 of a
   two-output model (``bench_rest``).

Run: ``python benchmarks/bench_quantize.py`` (about 3-5 minutes on 2 cores); ``--only-rest`` about 1 minute.
"""

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def _median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_batched(contents, x, repeats):
    """Rows (mode, batched s, one-by-one s, ratio, max |difference|) for each flatbuffer."""
    from weightkit.compress.quantize import TFLiteModel

    rows = []
    for mode, content in contents.items():
        model = TFLiteModel(content)
        batched = model.predict(x, batch_size=256)
        single = model.predict_one_by_one(x)
        t_batched = _median_seconds(lambda: model.predict(x, batch_size=256), repeats)
        t_single = _median_seconds(lambda: model.predict_one_by_one(x), repeats)
        rows.append((mode, t_batched, t_single, t_single / t_batched, float(np.abs(batched - single).max())))
    return rows


def renormalize_batchnorm(keras, model, x):
    """Set every BatchNormalization's moving statistics to its input's statistics on ``x``.

    A freshly initialized MobileNetV2 has moving mean 0 and variance 1 everywhere, so its
    activations shrink layer after layer and every input gets the same (uniform) output: top-1
    agreement would be 1.0 for any model. One training-mode pass with momentum 0 gives it the
    statistics training would have (data-free), and inputs then get different top-1 classes.
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)


def _synthetic_sequences(steps=8, n=1200, seed=0):
    from weightkit.analysis.data.datasets import Dataset

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, 2)).astype("float32")
    y = (x[:, steps // 2:, 0].sum(1) > x[:, :steps // 2, 0].sum(1)).astype("int64")
    cut = int(0.8 * n)
    return Dataset(x[:cut], y[:cut], x[cut:], y[cut:], f"synthetic sequences ({steps} steps)", "classification")


def every_mode(cnn, images, chart):
    """Section 4: every mode for the digits CNN and a small LSTM in one table; the CNN's sensitivity chart."""
    from weightkit.analysis._tf import import_keras
    from weightkit.compress.quantize import MODE_NAMES, keras_source, quantize_model
    from weightkit.reports.sensitivity_plot import plot_sensitivity

    keras = import_keras()
    sequences = _synthetic_sequences()
    keras.utils.set_random_seed(0)
    lstm = keras.Sequential([keras.Input((8, 2), name="series"), keras.layers.LSTM(16, name="lstm"),
                             keras.layers.Dense(2, activation="softmax", name="probs")], name="small_lstm")
    lstm.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    lstm.fit(sequences.x_train, sequences.y_train, epochs=15, batch_size=32, verbose=0)
    reports = []
    for name, model, data in (("digits CNN", cnn, images), ("small LSTM", lstm, sequences)):
        start = time.perf_counter()
        _, report = quantize_model(keras_source(model), list(MODE_NAMES), data, sensitivity=True, int16x8_limit_s=None)
        reports.append((name, report, time.perf_counter() - start))
    print("## Every mode, two models (test splits; latency: median ms per sample at batch 1)\n")
    print("| model | mode | status | bytes | × float32 | accuracy | agreement | mean |Δ| | ms/sample |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name, report, _ in reports:
        ref = report.reference
        print(f"| {name} | Keras (reference) | ok | {ref.bytes:,} | — | {ref.accuracy:.4f} | — | — | "
              f"{ref.latency_ms:.3f} |")
        for row in report.modes:
            if not row.ok:
                print(f"| {name} | {row.mode} | failed | — | — | — | — | — | — |")
                continue
            print(f"| {name} | {row.mode} | ok | {row.bytes:,} | {row.size_ratio:.3f} | {row.accuracy:.4f} | "
                  f"{row.agreement:.4f} | {row.mean_abs_diff:.2e} | {row.latency_ms:.3f} |")
    for name, report, seconds in reports:
        print(f"\n{name}: {seconds:.0f} s for every conversion, evaluation and the sensitivity")
        for row in report.modes:
            if not row.ok:
                print(f"- {row.mode}: failed: {row.error}")
        for note in report.notes:
            print(f"- note: {note}")
        print("- sensitivity (int8 one layer at a time): " + ", ".join(
            f"{r.name} {r.accuracy_drop:+.2f} pts / agreement {r.agreement:.4f}" for r in report.sensitivity.layers))
    os.makedirs(os.path.dirname(os.path.abspath(chart)), exist_ok=True)
    plot_sensitivity(reports[0][1].sensitivity, chart, title="digits CNN: per-layer int8 sensitivity")
    print(f"\nchart: {os.path.relpath(chart)}\n")


def _tokens(n=600, length=10, seed=1):
    from weightkit.analysis.data.datasets import Dataset

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 20, size=(n, length)).astype("int32")
    y = (x == 3).any(axis=1).astype("int64")
    cut = int(0.75 * n)
    return Dataset(x[:cut], y[:cut], x[cut:], y[cut:], "synthetic tokens (class 1 when token 3 occurs)",
                   "classification")


def _seeded(model):
    """Weights drawn N(0, 0.4) as in tests/zoo.py (random-weight forms)."""
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.set_weights([rng.normal(0.0, 0.4, w.shape).astype(w.dtype) for w in layer.get_weights()])
    return model


def _reloaded(keras, model, directory, name):
    path = os.path.join(directory, name + ".keras")
    model.save(path)
    return keras.saving.load_model(path)


def _rows(name, report):
    for row in report.modes:
        if row.ok:
            accuracy = "—" if row.accuracy is None else f"{row.accuracy:.4f}"
            print(f"| {name} | {row.mode} | {row.converter} | {accuracy} | {row.agreement:.4f} | "
                  f"{row.mean_abs_diff:.1e} |")
        else:
            print(f"| {name} | {row.mode} | failed: {row.error[:90]} | — | — | — |")


def bench_rest():
    """Section 5: variable-length inputs, int16x8 past TF's 16x8 quantizer, sensitivity of several outputs."""
    import tempfile

    from weightkit.analysis._tf import import_keras
    from weightkit.compress.quantize import TFLiteModel, convert_modes, keras_source, quantize_model

    keras = import_keras()
    layers = keras.layers
    directory = tempfile.mkdtemp(prefix="bench-quantize-")
    fast = {"latency_repeats": 3, "throughput_repeats": 1}
    print("## Variable-size inputs, int16x8 with token ids and GRUs (test split or given inputs)\n")
    print("| model | mode | converter | accuracy | agreement | mean |Δ| |")
    print("|---|---|---|---:|---:|---:|")
    sequences = _synthetic_sequences(steps=12)
    keras.utils.set_random_seed(0)
    lstm = keras.Sequential([keras.Input((None, 2), name="series"), layers.LSTM(16, name="lstm"),
                             layers.Dense(2, activation="softmax", name="probs")])
    lstm.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    lstm.fit(sequences.x_train, sequences.y_train, epochs=10, batch_size=32, verbose=0)
    lstm = _reloaded(keras, lstm, directory, "variable_lstm")
    _, report = quantize_model(keras_source(lstm), ["float32", "dynamic", "int8"], sequences, **fast)
    _rows("LSTM(16), Input((None, 2)), data of 12 steps", report)
    notes = [n for n in report.notes if "fixed to" in n]

    tokens = _tokens()
    keras.utils.set_random_seed(0)
    text = keras.Sequential([keras.Input((10,), dtype="int32", name="ids"), layers.Embedding(20, 8, name="embed"),
                             layers.LSTM(8, name="lstm"), layers.Dense(2, activation="softmax", name="probs")])
    text.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
    text.fit(tokens.x_train, tokens.y_train, epochs=15, batch_size=32, verbose=0)
    text = _reloaded(keras, text, directory, "embedding_lstm_trained")
    _, report = quantize_model(keras_source(text), ["float32", "int8", "int16x8"], tokens, int16x8_limit_s=None,
                               **fast)
    _rows("trained Embedding -> LSTM(8) -> Dense, int32 ids", report)
    notes += [n for n in report.notes if n.startswith("int16x8:")]

    gru = _reloaded(keras, _seeded(keras.Sequential([
        keras.Input((6, 3), name="series"), layers.GRU(5, return_sequences=True, name="gru"),
        layers.TimeDistributed(layers.Dense(2, name="step_dense"), name="per_step")])), directory, "gru_sequences")
    x = np.random.default_rng(1).normal(size=(400, 6, 3)).astype("float32")
    reference = gru.predict(x[200:], verbose=0)
    (tf_int16,) = convert_modes(keras_source(gru), ["int16x8"], calibration=x[:200])
    outputs = TFLiteModel(tf_int16.content).predict(x[200:])
    print(f"| zoo gru_sequences (random weights) | int16x8 | TF converter | — | "
          f"{np.mean(outputs.argmax(-1) == reference.argmax(-1)):.4f} | {np.abs(outputs - reference).mean():.1e} |")
    _, report = quantize_model(keras_source(gru), ["int8", "int16x8"], x, int16x8_limit_s=None, **fast)
    _rows("zoo gru_sequences (random weights)", report)
    for note in notes:
        print(f"\n- note: {note}")

    print("\n## Per-layer sensitivity of a two-output model (trunk -> softmax head + linear head), each mode\n")
    rng = np.random.default_rng(3)
    features = rng.normal(size=(600, 5)).astype("float32")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,), name="features")
    trunk = layers.Dense(16, activation="relu", name="trunk")(inputs)
    two = keras.Model(inputs, [layers.Dense(3, activation="softmax", name="class_head")(trunk),
                               layers.Dense(1, name="value_head")(trunk)])
    two = _reloaded(keras, _seeded(two), directory, "two_outputs")
    print("| mode | layer | agreement (mean of outputs) | class_head agreement | value_head agreement | mean |Δ| |")
    print("|---|---|---:|---:|---:|---:|")
    for mode in ("int8", "int4", "int16x8"):
        start = time.perf_counter()
        _, report = quantize_model(keras_source(two), ["float32"], features, sensitivity=True, sensitivity_mode=mode,
                                   **fast)
        for layer in report.sensitivity.layers:
            each = layer.outputs
            print(f"| {mode} | {layer.name} | {layer.agreement:.4f} | {each['class_head']['agreement']:.4f} | "
                  f"{each['value_head']['agreement']:.4f} | {layer.mean_abs_diff:.1e} |")
        print(f"| {mode} | ({time.perf_counter() - start:.1f} s) | | | | |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="samples for the batched-vs-loop comparison")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the digits CNN")
    parser.add_argument("--mobilenet-samples", type=int, default=64, help="random inputs for MobileNetV2")
    parser.add_argument("--skip-mobilenet", action="store_true")
    parser.add_argument("--skip-batched", action="store_true", help="skip the batched-vs-loop comparison")
    parser.add_argument("--only-rest", action="store_true", help="run section 5 only (bench_rest)")
    parser.add_argument("--chart", default=os.path.join(os.path.dirname(__file__), "..", "docs", "images",
                                                         "quantize_sensitivity_cnn.png"))
    args = parser.parse_args()
    if args.only_rest:
        bench_rest()
        return

    from weightkit.analysis._tf import import_keras
    from weightkit.analysis.data.datasets import Dataset, load_data
    from weightkit.compress.quantize import convert_modes, keras_source, quantize_model, random_inputs
    from weightkit.console.quantize_table import markdown_table
    from weightkit.demo.examples import build_small_cnn, build_wide_mlp, train_example

    keras = import_keras()
    import tensorflow as tf

    print(f"# weightkit quantize benchmark\n\nPython {platform.python_version()}, TensorFlow {tf.__version__}, "
          f"Keras {keras.__version__}, {os.cpu_count()} CPU cores; LiteRT interpreter default threads.\n")
    digits = load_data("sklearn:digits", seed=0)
    images = Dataset(digits.x_train.reshape(-1, 8, 8, 1), digits.y_train, digits.x_test.reshape(-1, 8, 8, 1),
                     digits.y_test, "sklearn:digits", "classification")
    start = time.perf_counter()
    model, test_accuracy = train_example(build_small_cnn(), images, epochs=args.epochs, seed=0)
    print(f"digits CNN (conv 16, conv 32, dense 64; {model.count_params():,} parameters): {args.epochs} epochs in "
          f"{time.perf_counter() - start:.1f} s, Keras test accuracy {test_accuracy:.4f}\n")

    every_mode(model, images, args.chart)
    start = time.perf_counter()
    contents, report = quantize_model(model, data=images)
    print(f"## Digits CNN: every mode (test split, 359 samples; {time.perf_counter() - start:.1f} s for "
          "conversion and evaluation)\n")
    print(markdown_table(report))
    for row in report.modes:
        if not row.ok:
            print(f"\n{row.mode}: failed: {row.error}")
    print(f"\nexported {report.exported.mode}: {report.exported.reason}")
    for note in report.notes:
        print(f"note: {note}")

    print(f"\n## Batched evaluation vs one invoke() per sample ({args.samples} samples, median of {args.repeats})\n")
    print("| model | mode | batched (256 per invoke) s | one invoke per sample s | speed-up | max |Δ| |")
    print("|---|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    # MLPs untrained: speed does not depend on the weights' values.
    cnn_flatbuffers = {m: contents[m] for m in ("float32", "dynamic", "int8")}
    subjects = [] if args.skip_batched else [("digits CNN", images, cnn_flatbuffers),
                ("digits MLP 64-256-256-10", digits, build_wide_mlp((256, 256))),
                ("digits MLP 64-64-64-10", digits, build_wide_mlp((64, 64)))]
    for name, data, flatbuffers in subjects:
        if not isinstance(flatbuffers, dict):
            flatbuffers = {c.mode: c.content for c in convert_modes(keras_source(flatbuffers),
                                                                     ["float32", "dynamic", "int8"],
                                                                     calibration=data.x_train)}
        x = data.x_train[rng.integers(0, len(data.x_train), args.samples)]
        for mode, t_batched, t_single, ratio, diff in bench_batched(flatbuffers, x, args.repeats):
            print(f"| {name} | {mode} | {t_batched:.4f} | {t_single:.4f} | {ratio:.1f}× | {diff:.1e} |")

    if args.skip_mobilenet:
        return
    keras.utils.set_random_seed(0)
    mobilenet = keras.applications.MobileNetV2(weights=None)
    renormalize_batchnorm(keras, mobilenet, random_inputs(mobilenet.inputs[0].shape, 16, seed=1))
    start = time.perf_counter()
    _, report = quantize_model(mobilenet, ["float32", "dynamic", "float16"],
                               random_samples=args.mobilenet_samples, latency_repeats=10, throughput_repeats=3)
    reference = mobilenet(random_inputs(mobilenet.inputs[0].shape, args.mobilenet_samples)).numpy()
    print(f"\n## MobileNetV2 (weights=None, BatchNorm statistics set on 16 random inputs; "
          f"{mobilenet.count_params():,} parameters): no data, {args.mobilenet_samples} random inputs (uniform "
          f"[0, 1)); agreement = same top-1 class; {len(np.unique(reference.argmax(1)))} distinct top-1 classes "
          f"among them ({time.perf_counter() - start:.1f} s)\n")
    print(markdown_table(report))
    print(f"\nexported {report.exported.mode}: {report.exported.reason}")


if __name__ == "__main__":
    main()
