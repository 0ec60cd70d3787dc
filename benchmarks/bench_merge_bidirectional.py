"""Data-aware merging of Bidirectional(LSTM) units vs L1 pruning of the same number, without fine-tuning.

Subject: a small sequence classifier trained here on scikit-learn's digits read row by row (each
8x8 image is a sequence of 8 steps of 8 pixel values, scaled to [0, 1]; seeded split: 1437
training, 360 held-out samples): ``Bidirectional(LSTM(units, return_sequences=True))`` ->
``Bidirectional(LSTM(units))`` -> ``Dense(10, softmax)``, ``--merge-mode`` joining the halves
(``concat`` by default), Adam, ``--epochs`` epochs from each of ``--seeds``; the model is saved and
reloaded before merging.

For each ratio F, ``round(F · units)`` units of each half of both Bidirectional layers are removed,
no fine-tuning:

- ``data-aware``: :func:`weightkit.compress.merge.merge_by_data` calibrated on ``--samples`` training inputs:
  each half's removed units rebuilt from its kept ones on its own hidden states (every step),
  folded into that half's recurrent kernels and the next layer's input rows;
- ``L1 prune``: the units whose outgoing weights (recurrent kernel rows and the next layer's rows)
  have the smallest L1 norm, dropped from every gate with no compensation.

Accuracy and agreement with the original are measured on the held-out split.

Run: ``python benchmarks/bench_merge_bidirectional.py`` (about 90 s per seed on 2 cores at load 3, most of it training).
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.compress.merge import merge_by_data
from weightkit.compress.merge.bidirectional import HALVES
from weightkit.compress.merge.applying.input_rows import input_kernels
from weightkit.compress.merge.applying.rebuild import WeightState, find_layer, rebuild_model
from weightkit.compress.merge.recurrent import recurrent_site
from weightkit.compress.merge.recurrent_units import cut_own_units

LAYERS = ("bi1", "bi2")


def load_sequences(seed=0):
    """Digits as (n, 8 steps, 8 features) in [0, 1]; a seeded 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")
    return train_test_split(x, digits.target.astype("int64"), test_size=0.2, random_state=seed,
                            stratify=digits.target)


def build_classifier(units, merge_mode):
    keras = import_keras()
    L = keras.layers
    inputs = keras.Input((8, 8), name="rows")
    x = L.Bidirectional(L.LSTM(units, return_sequences=True), merge_mode=merge_mode, name="bi1")(inputs)
    x = L.Bidirectional(L.LSTM(units), merge_mode=merge_mode, name="bi2")(x)
    return keras.Model(inputs, L.Dense(10, activation="softmax", name="probs")(x), name="bilstm_digits")


def l1_prune(model, ratio):
    """Drop ``round(ratio · units)`` units per half with the smallest outgoing L1 norm; no compensation."""
    graph, state = ModelGraph(model), WeightState(model)
    for name in LAYERS:
        site = recurrent_site(graph, find_layer(model, name))
        n = site.n_units
        count = round(ratio * n)
        channels = 2 * n if site.merge_mode == "concat" else n
        chosen = []
        for index, prefix in enumerate(HALVES):
            offset = index * n if site.merge_mode == "concat" else 0
            score = np.abs(state.arrays[name][prefix + "recurrent_kernel"]).sum(axis=1)
            for consumer, _ in site.consumers:
                for key, _, _ in input_kernels(find_layer(model, consumer)):
                    kernel = state.arrays[consumer][key]
                    score = score + np.abs(kernel.reshape(-1, channels, kernel.shape[-1])[:, offset:offset + n]
                                           ).sum(axis=(0, 2))
            chosen.append(np.sort(np.argsort(score, kind="stable")[:count]))
        if site.merge_mode != "concat":
            chosen = [chosen[0], chosen[0]]  # the same units leave both halves
        for index, (prefix, removed) in enumerate(zip(HALVES, chosen)):
            cut_own_units(state, name, n, removed, prefix=prefix)
            offset = index * n if site.merge_mode == "concat" else 0
            if site.merge_mode == "concat" or index == 0:
                for consumer, _ in site.consumers:
                    for key, _, _ in input_kernels(find_layer(model, consumer)):
                        state.cut(consumer, key, -2, channels, offset + removed)
        state.resized[name] = n - count
    return rebuild_model(model, state)


def _accuracy(keras, model, x, y):
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    return probs.argmax(axis=1), float((probs.argmax(axis=1) == y).mean())


def run_seed(seed, args, data):
    keras = import_keras()
    x_train, x_test, y_train, y_test = data
    keras.utils.set_random_seed(seed)
    model = build_classifier(args.units, args.merge_mode)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    train_seconds = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bilstm.keras")
        model.save(path)
        model = keras.models.load_model(path)
    predicted, accuracy = _accuracy(keras, model, x_test, y_test)
    rows = [(seed, 0.0, "original", accuracy, 1.0, model.count_params(), train_seconds)]
    for ratio in args.ratios:
        t0 = time.perf_counter()
        merged, _ = merge_by_data(model, x_train, ratio=ratio, layers=list(LAYERS), samples=args.samples, seed=seed)
        seconds = time.perf_counter() - t0
        for method, small, took in (("data-aware", merged, seconds), ("L1 prune", l1_prune(model, ratio), 0.0)):
            small_predicted, small_accuracy = _accuracy(keras, small, x_test, y_test)
            rows.append((seed, ratio, method, small_accuracy, float((small_predicted == predicted).mean()),
                         small.count_params(), took))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--merge-mode", default="concat", choices=["concat", "sum", "ave"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    data = load_sequences()
    rows = [row for seed in args.seeds for row in run_seed(seed, args, data)]
    print(f"Bidirectional(LSTM({args.units})) x2, merge_mode={args.merge_mode}, {args.epochs} epochs, "
          f"seeds {args.seeds}; held-out accuracy (360 digits), no fine-tune")
    print("| seed | units removed per half | method | accuracy | agreement | parameters | seconds |")
    print("|---|---|---|---|---|---|---|")
    for seed, ratio, method, accuracy, agreement, params, seconds in rows:
        print(f"| {seed} | {ratio:.0%} | {method} | {accuracy:.4f} | {agreement:.4f} | {params:,} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
