"""Data-aware merging vs weight-based merging vs L1 pruning, at fixed budgets, without fine-tuning.

Subject: the merge benchmark's model (``benchmarks/bench_merge.py``): a 64-512-512-10 ReLU MLP
(``analysis.examples.build_wide_mlp``) on scikit-learn's digits (1437 training, 359 test samples,
seeded split), Adam, L2(3e-3) weight decay, ``--epochs`` epochs. Its model-building and L1
pruning code are imported from there.

For each ratio F, ``round(F · 512)`` neurons of each hidden layer are removed:

- ``data-aware``: :func:`compress.merge_data_model.merge_by_data` calibrated on ``--samples``
  inputs of the *training* split (each removed neuron rebuilt from the kept ones of its layer by
  least squares, removals chosen greedily by the consumer's input error);
- ``data (own error)``: the same, choosing removals by the error in the layer's own activations
  instead of the consumer's input (an ablation);
- ``merge (METRIC)``: weight-based merging, ``compress.merge_redundant(ratio=F, metric=METRIC)``;
- ``L1 prune``: the smallest-L1-norm neurons dropped, no compensation (``bench_merge.l1_prune``).

Accuracy is measured on the held-out test split, which calibration never sees.

Run: ``python benchmarks/bench_merge_data.py`` (about 3 minutes on 2 cores).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from bench_merge import HIDDEN, build_wide_mlp, hidden_params, l1_prune, load_data, train_example  # noqa: E402
from compress import merge_redundant  # noqa: E402
from compress.merge_data_model import merge_by_data  # noqa: E402
from compress.merge_report import compare_models  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.8])
    parser.add_argument("--metrics", nargs="+", default=["pearson", "cosine", "mad"])
    parser.add_argument("--samples", type=int, default=1000, help="calibration inputs from the training split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_data("sklearn:digits", seed=0)
    start = time.perf_counter()
    model, accuracy = train_example(build_wide_mlp((args.width, args.width)), data, epochs=args.epochs,
                                    seed=args.seed)
    print(f"subject: 64-{args.width}-{args.width}-10 ReLU MLP, {args.epochs} epochs "
          f"({time.perf_counter() - start:.0f} s); test accuracy {accuracy:.4f} on {len(data.x_test)} held-out "
          f"digits; calibration: {min(args.samples, len(data.x_train))} of {len(data.x_train)} training inputs")
    base_params = hidden_params(model)
    rows = []
    for ratio in args.ratios:
        candidates = {}
        for label, weigh in (("data-aware", True), ("data (own error)", False)):
            t0 = time.perf_counter()
            small, report = merge_by_data(model, data.x_train, ratio=ratio, layers=list(HIDDEN),
                                          samples=args.samples, seed=args.seed, weigh_by_consumer=weigh)
            r2 = np.concatenate([[item["r2"] for item in layer.removed] for layer in report.layers])
            candidates[label] = (small, time.perf_counter() - t0, float(np.median(r2)))
        for metric in args.metrics:
            t0 = time.perf_counter()
            small, _ = merge_redundant(model, ratio=ratio, metric=metric, layers=list(HIDDEN))
            candidates[f"merge ({metric})"] = (small, time.perf_counter() - t0, None)
        t0 = time.perf_counter()
        candidates["L1 prune"] = (l1_prune(model, ratio), time.perf_counter() - t0, None)
        for method, (small, seconds, r2) in candidates.items():
            result = compare_models(model, small, data.x_test, data.y_test)
            rows.append((ratio, method, result["accuracy_after"], result["agreement"], hidden_params(small),
                         seconds, r2))

    header = (f"{'removed':>8} {'method':<17} {'accuracy':>9} {'Δ points':>9} {'agreement':>10} "
              f"{'median R²':>10} {'hidden params':>14} {'time s':>7}")
    print(header)
    print("-" * len(header))
    print(f"{'0%':>8} {'original':<17} {accuracy:>9.4f} {0:>+9.2f} {1:>10.4f} {'':>10} {base_params:>14,} {'':>7}")
    for ratio, method, acc, agreement, params, seconds, r2 in rows:
        shown = f"{r2:>10.3f}" if r2 is not None else f"{'':>10}"
        print(f"{ratio:>8.0%} {method:<17} {acc:>9.4f} {100 * (acc - accuracy):>+9.2f} {agreement:>10.4f} "
              f"{shown} {params:>14,} {seconds:>7.1f}")
    print("(one test sample is 0.28 accuracy points; median R²: of the removed neurons' reconstructions on the "
          "calibration sample)")
    print()
    table = {(r, m): a for r, m, a, *_ in rows}
    others = [m for m in dict.fromkeys(m for _, m, *_ in rows) if not m.startswith("data")]
    ahead = [r for r in args.ratios if all(table[r, "data-aware"] > table[r, m] for m in others)]
    tied = [r for r in args.ratios if r not in ahead and all(table[r, "data-aware"] >= table[r, m] for m in others)]
    print(f"data-aware ahead of every weight-based merge and L1 pruning at {_pct(ahead)}, tied for best at "
          f"{_pct(tied)}, of {_pct(args.ratios)}")
    if 0.5 in args.ratios:
        drop = 100 * (accuracy - table[0.5, "data-aware"])
        print(f"data-aware at 50% removed: {drop:+.2f} points below the original "
              f"({'within' if drop <= 0.5 else 'NOT within'} 0.5 points)")


def _pct(ratios):
    return "[" + ", ".join(f"{r:.0%}" for r in ratios) + "]" if ratios else "none"


if __name__ == "__main__":
    main()
