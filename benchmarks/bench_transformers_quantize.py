"""Benchmark: ``weightkit quantize`` on two transformers in every mode (one run, a markdown table for the README).

The subjects are the test zoo's (tests/zoo_transformers.py), trained here a little longer than in the tests:

- ``ViT``: scikit-learn digits as 16 patches of 2x2, Dense patch embedding + position embedding, two pre-norm
  blocks of MultiHeadAttention(4 heads) + Dense FFN, residual Adds (12 epochs);
- ``text``: int32 token ids, Embedding + position embedding, one MultiHeadAttention(2 heads) + FFN block, on a
  synthetic task that needs attention (is token 1 before token 2?) (10 epochs);
- ``Gemma`` (when keras-hub is installed): a tiny keras_hub GemmaBackbone (2 decoder blocks, rotary attention with
  4 query heads and 1 key/value head, RMSNormalization, gated GELU MLP) with a mean-pool softmax head, on the same
  task (4 epochs).

Every mode of :data:`weightkit.compress.quantize.MODE_NAMES` (TFLite float32, dynamic, float16, int8, int8-io,
int16x8; Keras-native int8/int4/float8; ONNX; mixed) with the per-layer int8 sensitivity, on each test split:
size, accuracy, agreement with Keras, mean |output difference|, latency at batch 1. What stays float in each
mode is printed under the table (notes and failures).

Run: ``python benchmarks/bench_transformers_quantize.py [ViT text Gemma]`` (the subjects named, all by default;
about 4-6 minutes on 2 cores for the first two).
"""

import datetime
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests.zoo, from the repository

SUBJECTS = (("ViT", "vit_digits", 12), ("text", "text_attention", 10), ("Gemma", "hub_gemma", 4))


def main():
    import tempfile

    from tests.zoo_transformers import TRANSFORMER_TASKS, TRANSFORMER_ZOO
    from weightkit.compress.quantize import MODE_NAMES, keras_source, quantize_model

    load = os.getloadavg()
    print(f"# Transformers in every quantization mode ({datetime.date.today()}, {platform.machine()}, "
          f"{os.cpu_count()} cores, load average at start {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f})\n")
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-transformers-") as folder:
        for label, name, epochs in SUBJECTS:
            if sys.argv[1:] and label not in sys.argv[1:]:
                continue
            if name.startswith("hub"):
                try:
                    import keras_hub  # noqa: F401 - the zoo's keras-hub builders need it
                except ImportError:
                    print(f"{label}: skipped (pip install keras-hub)\n")
                    continue
            start = time.perf_counter()
            model = TRANSFORMER_ZOO[name](folder, epochs=epochs)
            trained = time.perf_counter() - start
            start = time.perf_counter()
            _, report = quantize_model(keras_source(model), list(MODE_NAMES), TRANSFORMER_TASKS[name](),
                                       sensitivity=True, int16x8_limit_s=None)
            reports.append((label, model.count_params(), report, trained, time.perf_counter() - start))
    print("| model | mode | status | bytes | × float32 | accuracy | agreement | mean |Δ| | ms/sample @1 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for label, _, report, _, _ in reports:
        ref = report.reference
        print(f"| {label} | Keras (reference) | ok | {ref.bytes:,} | — | {ref.accuracy:.4f} | — | — | "
              f"{ref.latency_ms:.3f} |")
        for row in report.modes:
            if not row.ok:
                print(f"| {label} | {row.mode} | failed | — | — | — | — | — | — |")
                continue
            print(f"| {label} | {row.mode} | ok | {row.bytes:,} | {row.size_ratio:.3f} | {row.accuracy:.4f} | "
                  f"{row.agreement:.4f} | {row.mean_abs_diff:.2e} | {row.latency_ms:.3f} |")
    for label, params, report, trained, seconds in reports:
        print(f"\n{label}: {params:,} parameters, trained in {trained:.0f} s; {seconds:.0f} s for every conversion, "
              "evaluation and the sensitivity")
        for row in report.modes:
            if not row.ok:
                print(f"- {row.mode}: failed: {row.error}")
        for note in report.notes:
            print(f"- note: {note}")
        ranked = ", ".join(f"{r.name} {r.accuracy_drop:+.2f} pts / mean |Δ| {r.mean_abs_diff:.1e}"
                           for r in report.sensitivity.layers)
        print(f"- sensitivity (int8 one layer at a time, most sensitive first): {ranked}")
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}")


if __name__ == "__main__":
    main()
