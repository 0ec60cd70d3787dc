"""Benchmark for ``weightkit quantize`` (one run, prints markdown tables for the README).

1. Batched LiteRT evaluation (input resized to a batch, one ``invoke()`` per batch) against a
   loop of one ``invoke()`` per sample, on 1,000 samples: time and speed ratio (goal ≥ 10×).
   The ratio is (per-invoke overhead + compute) / compute: large for tiny models, near 1 for big ones.
2. The full comparison table for a digits CNN trained here (scikit-learn digits, no download).
3. The comparison table for ``keras.applications.MobileNetV2(weights=None)``: no data, so
   agreement and output error on random inputs only.

Run: ``python benchmarks/bench_quantize.py`` (about 3-5 minutes on 2 cores).
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
    from compress.quantize import TFLiteModel

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="samples for the batched-vs-loop comparison")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs of the digits CNN")
    parser.add_argument("--mobilenet-samples", type=int, default=64, help="random inputs for MobileNetV2")
    parser.add_argument("--skip-mobilenet", action="store_true")
    args = parser.parse_args()

    from analysis._tf import import_keras
    from analysis.data import Dataset, load_data
    from compress.quantize import convert_modes, keras_source, quantize_model, random_inputs
    from reports.quantize_table import markdown_table
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
    subjects = [("digits CNN", images, {m: contents[m] for m in ("float32", "dynamic", "int8")}),
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
