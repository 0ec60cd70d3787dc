"""Merging a residual CNN through its coupled channels: data-aware vs weights vs group-L1 pruning.

Subject: a small residual CNN on scikit-learn's digits as 8x8x1 images (seeded split: 1438
training, 359 held-out samples): stem Conv2D(W, 3) + BatchNormalization + ReLU, then two residual
blocks (Conv-BN-ReLU-Conv-BN, identity shortcut, Add, ReLU), GlobalAveragePooling2D, Dense(10).
The stem and both blocks' second convolutions write into one residual stream: one coupled
channel group of three producers; each block's first convolution is a plain layer.

For each ratio F, ``round(F · n)`` channels of every group (the residual group counted once) and
of every plain layer are removed, no fine-tuning:

- ``data-aware``: :func:`weightkit.compress.merge.merge_by_data` calibrated on the training split (each
  removed channel rebuilt from the kept ones on every tensor the consumers read, all fitted on
  the original model's activations);
- ``data-aware + BN``: the same, then the BatchNormalization statistics re-estimated on the
  calibration sample (``reestimate_bn=True``);
- ``refit``: the sequential refit (``refit=True``): each tensor read, in topological order,
  fitted on the model merged so far, the original consumers' inputs rebuilt from the kept channels;
- ``refit global``: the same with ``allocation="global"`` (the ratio's removals spread over the
  groups by the error they cost; the parameter count then differs);
- ``… all``: calibrated on every training image (``samples`` = 1,438) instead of the default
  seeded 1,000;
- ``weights``: :func:`weightkit.compress.merge.merge_redundant` (Pearson, ``--ratio``);
- ``group-L1``: DepGraph's criterion: the channels with the smallest L1 norm summed over every
  weight coupled to them (producers' filters, consumers' rows) dropped, no compensation.

Then each merged model is fine-tuned for ``--finetune`` epochs (Adam 1e-4, BatchNormalization
frozen, see :func:`finetune`) and measured again.

Run: ``python benchmarks/bench_merge_coupled.py`` (a few minutes on 2 cores).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.structure.channels import channel_groups
from weightkit.analysis.data.datasets import Dataset, load_data
from weightkit.analysis.kinds.layers import spec_for
from weightkit.compress.merge import merge_by_data, merge_redundant
from weightkit.compress.merge.by_weights import apply_relations
from weightkit.compress.merge.applying.group_fold import consumer_block, producer_rows
from weightkit.compress.merge.planning.groups import plan_groups
from weightkit.compress.merge.applying.math import Relation
from weightkit.compress.merge.applying.rebuild import WeightState


def build_residual_cnn(width):
    keras = import_keras()
    L = keras.layers
    inputs = keras.Input((8, 8, 1), name="image")
    x = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(L.Conv2D(width, 3, padding="same",
                                                                                  name="stem")(inputs)))
    for block in (1, 2):
        y = L.Conv2D(width, 3, padding="same", name=f"b{block}_conv1")(x)
        y = L.ReLU(name=f"b{block}_relu1")(L.BatchNormalization(name=f"b{block}_bn1")(y))
        y = L.BatchNormalization(name=f"b{block}_bn2")(L.Conv2D(width, 3, padding="same", name=f"b{block}_conv2")(y))
        x = L.ReLU(name=f"b{block}_out")(L.Add(name=f"b{block}_add")([x, y]))
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="classes")(x), name="residual_cnn")


def accuracy(model, data):
    return float((model.predict(data.x_test, verbose=0).argmax(axis=1) == data.y_test).mean())


def finetune(model, data, epochs, seed):
    """A few epochs of Adam(1e-4) with the BatchNormalizations frozen (inference statistics).

    Training BN with batch statistics for two epochs lags their moving averages behind the
    weights: measured here, the *unmerged* model fell from 0.9944 to 0.8914 after two epochs of
    Adam(1e-3) that way; frozen BN with Adam(1e-4) kept it at 0.9944.
    """
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return accuracy(model, data)


def group_l1(model, ratio):
    """DepGraph's group-L1 pruning: per group, drop the channels of smallest summed L1 norm."""
    plan = plan_groups(model)
    state = WeightState(model)
    relations = {}
    for group in channel_groups(plan.graph):
        name = group.producers[0] if group.producers else None
        if not group.mergeable or name is None or not (plan.plain(name) or group in plan.groups):
            continue
        score = np.zeros(group.n)
        for use in group.uses:
            layer = plan.graph.nodes[use.node].layer
            if use.role == "producer":
                score += np.abs(producer_rows(state, use.layer, spec_for(layer))).sum(axis=1)
            elif use.role == "consumer":
                score += np.abs(consumer_block(state, use, use.inputs[0][1], group.n)).sum(axis=1)
        count = min(group.n - 1, round(ratio * group.n))
        relations[name] = Relation.prune(group.n, np.argsort(score, kind="stable")[:count])
    return apply_relations(model, relations)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--finetune", type=int, default=2)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras = import_keras()
    digits = load_data("sklearn:digits", seed=0)
    data = Dataset(digits.x_train.reshape(-1, 8, 8, 1), digits.y_train, digits.x_test.reshape(-1, 8, 8, 1),
                   digits.y_test, "sklearn:digits", "classification")
    keras.utils.set_random_seed(args.seed)
    model = build_residual_cnn(args.width)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=32, verbose=0)
    base = accuracy(model, data)
    print(f"residual CNN, width {args.width}, {args.epochs} epochs ({time.perf_counter() - start:.0f} s): "
          f"test accuracy {base:.4f}, {model.count_params():,} parameters", flush=True)
    path = "/tmp/bench_merge_coupled.keras"
    model.save(path)
    model = keras.saving.load_model(path)
    everything = len(data.x_train)
    methods = {
        "data-aware": lambda r: merge_by_data(model, data, ratio=r, seed=args.seed)[0],
        "data-aware + BN": lambda r: merge_by_data(model, data, ratio=r, seed=args.seed, reestimate_bn=True)[0],
        "refit": lambda r: merge_by_data(model, data, ratio=r, seed=args.seed, refit=True)[0],
        "refit global": lambda r: merge_by_data(model, data, ratio=r, seed=args.seed, refit=True,
                                                allocation="global")[0],
        "data-aware all": lambda r: merge_by_data(model, data, ratio=r, seed=args.seed, samples=everything)[0],
        "refit all": lambda r: merge_by_data(model, data, ratio=r, seed=args.seed, refit=True,
                                             samples=everything)[0],
        "weights": lambda r: merge_redundant(model, ratio=r)[0],
        "group-L1": lambda r: group_l1(model, r),
    }
    rows = []
    for ratio in args.ratios:
        for method, run in methods.items():
            t0, c0 = time.perf_counter(), time.process_time()
            small = run(ratio)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            before = accuracy(small, data)
            after = finetune(small, data, args.finetune, args.seed) if args.finetune else float("nan")
            rows.append((ratio, method, before, after, small.count_params(), seconds, cpu))
            print(f"  {ratio:.0%} {method:<15} {before:.4f} -> fine-tuned {after:.4f} "
                  f"({small.count_params():,} params, {seconds:.1f} s, {cpu:.1f} s CPU)", flush=True)
    print(f"\n| removed | method | accuracy (no fine-tune) | after {args.finetune}-epoch fine-tune | parameters "
          "| merge s (CPU s) |")
    print("|---|---|---|---|---|---|")
    print(f"| 0% | original | {base:.4f} | – | {model.count_params():,} | – |")
    for ratio, method, before, after, params, seconds, cpu in rows:
        print(f"| {ratio:.0%} | {method} | {before:.4f} | {after:.4f} | {params:,} | {seconds:.1f} ({cpu:.1f}) |")


if __name__ == "__main__":
    main()
