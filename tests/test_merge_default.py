"""Issue 28: the default data-aware merge, ``--max-drop``, ``--fine-tune`` and the low-agreement warning.

Models are tiny, seeded, saved and reloaded before merging (tests.zoo); the digits MLP is trained for
a few epochs once per module.
"""

import json

import numpy as np
import pytest

from weightkit._common import run_cli
from weightkit.cli import cli
from tests.zoo import load_zoo, reloaded, scaled_weights, zoo_inputs

# Held-out agreement of the default merge on 200 random inputs (400 calibrate), measured 2026-12-07 on this code, at
# half of every layer: nested_functional 0.965, nested_sequential 0.97, simple_rnn 0.93, gru_sequences 0.986,
# two_outputs 0.99; the residual (two blocks, width 8, centred logits: many near ties) at a quarter: 0.885 (one-shot
# also 0.885; at half 0.80 against 0.78). The floors leave room for float and seed differences.
FLOORS = {"nested_functional": 0.9, "nested_sequential": 0.9, "simple_rnn": 0.85, "gru_sequences": 0.95,
          "two_outputs": 0.95, "residual": 0.8}
RATIOS = {"residual": 0.25}


def _two_block_residual(keras, directory):
    """Stem conv and two residual blocks (conv-BN-ReLU-conv-BN, Add, ReLU), GAP, Dense(4): the residual stream is
    one coupled group read after each block, where the one-shot fit's errors add up."""
    L = keras.layers
    inputs = keras.Input((6, 6, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="stem")(inputs)))
    for b in range(2):
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name=f"c{b}a")(x)))
        y = L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name=f"c{b}b")(y))
        x = L.ReLU()(L.Add()([x, y]))
    model = keras.Model(inputs, L.Dense(4, name="head")(L.GlobalAveragePooling2D()(x)), name="residual")
    scaled_weights(model, np.random.default_rng(0))
    head = model.get_layer("head")  # centre the logits: random weights alone give one class to every input
    logits = model.predict(zoo_inputs(model, 400, seed=1), verbose=0)
    head.set_weights([head.get_weights()[0], head.get_weights()[1] - logits.mean(axis=0)])
    return reloaded(model, directory, "residual")


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.mark.parametrize("form", sorted(FLOORS))
def test_default_merge_keeps_held_out_agreement(form, zoo_dir, keras):
    from weightkit.compress.merge import merge_neurons

    model = _two_block_residual(keras, zoo_dir) if form == "residual" else load_zoo(form, zoo_dir)
    x_train, x_test = zoo_inputs(model, 400, seed=1), zoo_inputs(model, 200, seed=2)
    merged, report = merge_neurons(model, "data", x_train, evaluate_on=x_test, ratio=RATIOS.get(form, 0.5))
    assert merged.count_params() < model.count_params()
    assert report.samples == 400  # every calibration input given (under the 2,048 cap)
    outputs = model.predict(x_test, verbose=0)
    first = outputs[0] if isinstance(outputs, list) else outputs
    assert len(np.unique(first.reshape(-1, first.shape[-1]).argmax(axis=1))) >= 2  # agreement is not trivial
    assert report.evaluation["agreement"] >= FLOORS[form]
    assert (report.warning is None) == (report.evaluation["agreement"] >= 0.9)


@pytest.fixture(scope="module")
def tiny(digits, keras, tmp_path_factory):
    """A 64-32-10 digits MLP (trained 15 epochs), saved; and an unlabeled .npz of digits' inputs."""
    from weightkit.demo.examples import build_wide_mlp, train_example

    model, _ = train_example(build_wide_mlp((32,), name="tiny_mlp"), digits, epochs=15, seed=0)
    folder = tmp_path_factory.mktemp("default")
    path = folder / "tiny.keras"
    model.save(path)
    npz = folder / "inputs.npz"
    np.savez(npz, x_train=digits.x_train, x_test=digits.x_test)
    return str(path), str(npz), folder


def _run(capsys, *argv):
    status = run_cli(cli, [str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def crushed(tiny, tmp_path_factory):
    """``merge --ratio 0.9`` on the tiny MLP with unlabeled data, without and with ``--fine-tune 8``."""
    import contextlib
    import io

    from weightkit._common import run_cli as run

    path, npz, folder = tiny
    runs = {}
    for name, extra in (("plain", []), ("tuned", ["--fine-tune", "8"])):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = run(cli, ["merge", path, "-o", str(folder / f"{name}.keras"), "--mode", "data", "--data", npz,
                               "--ratio", "0.9", *extra])
        with open(folder / f"{name}.json", encoding="utf-8") as handle:
            runs[name] = (status, out.getvalue(), json.load(handle))
    return runs


def test_low_agreement_is_one_warning_line_and_exit_0(crushed):
    status, out, document = crushed["plain"]
    assert status == 0
    evaluation = document["evaluation"]
    expected = (f"warning: the merged model agrees with the original on only {evaluation['agreement']:.1%} of "
                f"{evaluation['samples']} held-out samples (below 90%): try --max-drop 1 (the largest merge within 1 "
                "point), --fine-tune 10 (distil the original back in) or a smaller --ratio.")
    assert evaluation["agreement"] < 0.9
    assert document["warning"] == expected
    assert " ".join(expected.split()) in " ".join(out.split())  # the console may wrap it


def test_fine_tune_recovers_agreement_without_labels(crushed, tiny, keras):
    from weightkit.compress.shrink import split_held_out

    path, npz, folder = tiny
    _, _, document = crushed["tuned"]
    assert document["fine_tune"]["best_epoch"] >= 1
    arrays = np.load(npz)
    _, (x_test, _), _ = split_held_out(arrays["x_test"], seed=0, n_train=len(arrays["x_train"]))  # the reported half
    original = keras.models.load_model(path).predict(x_test, verbose=0).argmax(axis=1)
    plain = keras.models.load_model(folder / "plain.keras").predict(x_test, verbose=0).argmax(axis=1)
    before = float(np.mean(plain == original))
    assert document["evaluation"]["samples"] == len(x_test)
    # Measured 2026-12-07 on the same kind of MLP: 0.657 before, 0.763 after 8 epochs; asked: 5 points recovered.
    assert document["evaluation"]["agreement"] >= before + 0.05


def test_max_drop_stays_within_the_budget_on_the_split_it_chose_on(tiny, digits, keras):
    from weightkit.compress.shrink import Judge, guided_merge, split_held_out

    path, _, _ = tiny
    original = keras.models.load_model(path)
    merged, report = guided_merge(original, digits, max_drop=1.5)
    (x_val, y_val), _, _ = split_held_out(digits.x_test, digits.y_test, seed=0, n_train=len(digits.x_train))
    accuracy = [float(np.mean(m.predict(x_val, verbose=0).argmax(axis=1) == y_val)) for m in (original, merged)]
    assert merged.count_params() < original.count_params()
    assert 100 * (accuracy[0] - accuracy[1]) <= 1.5 + 1e-9
    assert report.budget["drop"] == pytest.approx(100 * (accuracy[0] - accuracy[1]))
    assert Judge(original, x_val, y_val).unit == "accuracy"


@pytest.mark.parametrize("argv, expected", [
    (["--ratio", "0.5", "--max-drop", "1"], "--max-drop and --ratio: give one of them; --max-drop finds the largest "
                                            "merge within the budget, the others fix its size."),
    (["--fine-tune", "3"], "--fine-tune: only with --mode data, which calibrates on DATA; add --mode data --data "
                           "DATA."),
])
def test_bad_combinations_are_one_line_and_exit_2(tiny, tmp_path, capsys, argv, expected):
    path, npz, _ = tiny
    mode = [] if "--fine-tune" in argv else ["--mode", "data"]
    status, out, err = _run(capsys, "merge", path, "-o", tmp_path / "m.keras", "--data", npz, *mode, *argv)
    assert status == 2
    assert err == f"weightkit merge: error: {expected}\n"
    assert not (tmp_path / "m.keras").exists()


def test_max_drop_of_a_regression_is_in_mae_against_the_original(zoo_dir, keras):
    from weightkit.compress.shrink import guided_merge, split_held_out

    L = keras.layers
    inputs = keras.Input((6,))
    hidden = L.Dense(12, activation="relu", name="h2")(L.Dense(12, activation="relu", name="h1")(inputs))
    model = keras.Model(inputs, L.Dense(1, name="value")(hidden), name="regression")
    scaled_weights(model, np.random.default_rng(0))
    model = reloaded(model, zoo_dir, "regression")
    rng = np.random.default_rng(3)
    x_train, x_held = rng.normal(size=(300, 6)).astype("float32"), rng.normal(size=(120, 6)).astype("float32")
    merged, report = guided_merge(model, x_train, evaluate_on=x_held, max_drop=0.05)
    (x_val, _), _, _ = split_held_out(x_held, seed=0, n_train=300)
    mae = float(np.mean(np.abs(merged.predict(x_val, verbose=0) - model.predict(x_val, verbose=0))))
    assert report.budget["unit"] == "mae"
    assert merged.count_params() < model.count_params()
    assert mae <= 0.05 and report.budget["drop"] == pytest.approx(mae, rel=1e-5)
