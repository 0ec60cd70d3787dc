"""Data-aware merging vs weight-based merging vs L1 pruning, at fixed budgets, without fine-tuning.

Subject: the merge benchmark's model (``benchmarks/bench_merge.py``, whose training, weight-based
merging and L1-pruning code is imported here): a 64-512-512-10 ReLU MLP
(``weightkit.demo.examples.build_wide_mlp``) on scikit-learn's digits (seeded split: 1438 training, 359
held-out samples), Adam, L2(3e-3) weight decay on the hidden kernels, ``--epochs`` epochs, trained
from each of ``--seeds``; figures are means over the trained models (the 359-sample test set moves
in steps of 0.28 points). ``--weight-decay 0 --width 256 --epochs 15`` gives a normally trained
network instead, whose weight rows show little redundancy.

For each ratio F, ``round(F · width)`` neurons of each hidden layer are removed, no fine-tuning:

- ``data-aware``: :func:`weightkit.compress.merge.merge_by_data` calibrated on ``--samples`` inputs of the
  *training* split: each removed neuron's activation rebuilt from the kept ones of its layer by
  least squares, removals chosen greedily by the error they cause in the consumer's input;
- ``data (own error)`` (with ``--ablation``): the same, choosing removals by the error in the
  layer's own activations;
- ``merge (METRIC)``: weight-based merging (``weightkit.compress.merge.merge_redundant``), as in bench_merge;
- ``L1 prune``: the smallest-L1-norm neurons dropped, no compensation, as in bench_merge.

Accuracy, agreement and TV distance are measured on the held-out split, which calibration never sees.

Run: ``python benchmarks/bench_merge_data.py`` (about 9 minutes on 2 cores).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from bench_merge import HIDDEN, build_wide_mlp, evaluate_subject, hidden_params, load_data, train_example  # noqa: E402

from weightkit.compress.merge import compare_models, merge_by_data


def evaluate_data_aware(model, data, ratios, *, samples, seed, ablation):
    """Rows ``(ratio, method, accuracy, agreement, tv_distance, hidden_params, seconds, median_r2)``."""
    reference = model.predict(data.x_test, verbose=0)
    variants = [("data-aware", True)] + ([("data (own error)", False)] if ablation else [])
    rows = []
    for ratio in ratios:
        for method, weigh in variants:
            t0 = time.perf_counter()
            small, report = merge_by_data(model, data, ratio=ratio, layers=list(HIDDEN), samples=samples,
                                          seed=seed, weigh_by_consumer=weigh)
            seconds = time.perf_counter() - t0
            r2 = float(np.median([item["r2"] for layer in report.layers for item in layer.removed]))
            result = compare_models(model, small, data.x_test, data.y_test)
            distance = 0.5 * np.abs(small.predict(data.x_test, verbose=0) - reference).sum(axis=1).mean()
            rows.append((ratio, method, result["accuracy_after"], result["agreement"], float(distance),
                         hidden_params(small), seconds, r2))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--weight-decay", type=float, default=3e-3, help="L2 on the hidden kernels")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5, 0.7, 0.8])
    parser.add_argument("--metrics", nargs="+", default=["pearson", "cosine", "mad"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samples", type=int, default=1000, help="calibration inputs from the training split")
    parser.add_argument("--ablation", action="store_true", help="also choose removals by the layer's own error")
    args = parser.parse_args()

    data = load_data("sklearn:digits", seed=0)
    base_accuracy, rows, base_params = [], [], None
    for seed in args.seeds:
        start = time.perf_counter()
        model, accuracy = train_example(build_wide_mlp((args.width, args.width), weight_decay=args.weight_decay),
                                        data, epochs=args.epochs, seed=seed)
        base_params = hidden_params(model)
        print(f"seed {seed}: 64-{args.width}-{args.width}-10 ReLU MLP, L2({args.weight_decay:g}), {args.epochs} "
              f"epochs ({time.perf_counter() - start:.0f} s): test accuracy {accuracy:.4f}", flush=True)
        base_accuracy.append(accuracy)
        rows += [(seed,) + row for row in evaluate_data_aware(model, data, args.ratios, samples=args.samples,
                                                              seed=seed, ablation=args.ablation)]
        rows += [(seed,) + row + (None,) for row in evaluate_subject(model, data, args.ratios, args.metrics)]
    accuracy = float(np.mean(base_accuracy))
    methods = list(dict.fromkeys(r[2] for r in rows))
    print(f"\n{len(data.x_test)} held-out digits (one sample = {100 / len(data.x_test):.2f} points); calibration: "
          f"{min(args.samples, len(data.x_train))} of {len(data.x_train)} training inputs; means over "
          f"{len(args.seeds)} trained models; hidden-layer params {base_params:,}")
    header = (f"{'removed':>8} {'method':<17} {'accuracy':>9} {'Δ points':>9} {'worst Δ':>8} {'agreement':>10} "
              f"{'TV dist':>8} {'median R²':>10} {'hidden params':>14} {'time s':>7}")
    print(header)
    print("-" * len(header))
    print(f"{'0%':>8} {'original':<17} {accuracy:>9.4f} {0:>+9.2f} {0:>+8.2f} {1:>10.4f} {0:>8.4f} {'':>10} "
          f"{base_params:>14,} {'':>7}")
    summary = {}
    for ratio in args.ratios:
        for method in methods:
            mine = [r for r in rows if r[1] == ratio and r[2] == method]
            deltas = [round(100 * (r[3] - base_accuracy[args.seeds.index(r[0])]), 3) + 0.0 for r in mine]
            acc, agreement, distance = (float(np.mean([r[k] for r in mine])) for k in (3, 4, 5))
            r2 = None if mine[0][8] is None else float(np.mean([r[8] for r in mine]))
            summary[ratio, method] = (acc, agreement, distance, float(np.mean(deltas)), min(deltas))
            shown = f"{r2:>10.4f}" if r2 is not None else f"{'':>10}"
            print(f"{ratio:>8.0%} {method:<17} {acc:>9.4f} {round(float(np.mean(deltas)), 3) + 0.0:>+9.2f} "
                  f"{min(deltas):>+8.2f} {agreement:>10.4f} {distance:>8.4f} {shown} {mine[0][6]:>14,} "
                  f"{float(np.mean([r[7] for r in mine])):>7.1f}")
    print("(Δ points: mean change of held-out accuracy; worst Δ: the worst model; agreement: same predicted class "
          "as the original; TV dist: mean total-variation distance between the class probabilities; median R²: "
          "of the removed neurons' reconstructions on the calibration sample)")
    print()
    others = [m for m in methods if not m.startswith("data")]
    for index, what, better in ((0, "mean accuracy", np.greater), (1, "agreement", np.greater),
                                (2, "TV dist", np.less)):
        ahead = [r for r in args.ratios if all(better(summary[r, "data-aware"][index], summary[r, m][index])
                                               for m in others)]
        print(f"{what}: data-aware better than every weight-based merge and L1 pruning at {_pct(ahead)} of "
              f"{_pct(args.ratios)}")
    if 0.5 in args.ratios:
        _, _, _, mean_delta, worst = summary[0.5, "data-aware"]
        print(f"data-aware at 50% removed: {mean_delta:+.2f} points on average, worst model {worst:+.2f} "
              f"({'within' if mean_delta >= -0.5 else 'NOT within'} 0.5 points of the original on average)")


def _pct(ratios):
    return "[" + ", ".join(f"{r:.0%}" for r in ratios) + "]" if ratios else "none"


if __name__ == "__main__":
    main()
