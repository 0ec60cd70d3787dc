"""``weightkit merge --mode data``: calibrated on the training split, evaluated on the held-out split."""

import json

import numpy as np
import pytest

from weightkit._common import run_cli
from weightkit.cli import cli

# float32 rounding of the folded weights on outputs of order 1.
EXACT = 1e-5


def run(capsys, *argv):
    """Run ``weightkit ARGV`` in process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = run_cli(cli, [str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def planted(keras, tmp_path_factory):
    """A 6-8-5-3 model with dead hidden1 neurons 2 and 6, and an npz whose splits are told apart.

    Training inputs lie in [0, 0.5), held-out inputs in [0.5, 1): every row says which split it
    came from.
    """
    rng = np.random.default_rng(1)
    inputs = keras.Input((6,), name="pixels")
    x = keras.layers.Dense(8, activation="relu", name="hidden1")(inputs)
    x = keras.layers.Dense(5, activation="relu", name="hidden2")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="classes")(x)
    model = keras.Model(inputs, outputs, name="planted_mlp")
    kernel = (np.abs(rng.normal(size=(6, 8))) / np.sqrt(6)).astype(np.float32)
    bias = np.full(8, 0.05, dtype=np.float32)
    bias[[2, 6]] = -100.0  # never fire on inputs in [0, 1)
    model.get_layer("hidden1").set_weights([kernel, bias])
    folder = tmp_path_factory.mktemp("merge_data_cli")
    model.save(folder / "planted.keras")
    data = folder / "split.npz"
    np.savez(data, x_train=0.5 * rng.random((150, 6)).astype(np.float32), y_train=rng.integers(0, 3, 150),
             x_test=(0.5 + 0.5 * rng.random((60, 6))).astype(np.float32), y_test=rng.integers(0, 3, 60))
    return model, str(folder / "planted.keras"), str(data)


def test_dead_neurons_removed_with_outputs_unchanged(capsys, tmp_path, keras, planted):
    model, path, data = planted
    out_path = tmp_path / "small.keras"
    status, out, err = run(capsys, "merge", path, "-o", out_path, "--mode", "data", "--data", data,
                           "--max-error", "0", "--layers", "hidden1")
    assert status == 0, err
    small = keras.models.load_model(out_path)
    assert small.get_layer("hidden1").units == 6
    x = np.load(data)["x_test"]
    np.testing.assert_allclose(small.predict(x, verbose=0), model.predict(x, verbose=0), atol=EXACT, rtol=0)
    document = json.loads((tmp_path / "small.json").read_text())
    assert document["mode"] == "data"
    layer = document["layers"][0]
    assert layer["removed_neurons"] == [{"neuron": 2, "r2": 1.0, "dead": True}, {"neuron": 6, "r2": 1.0, "dead": True}]
    assert document["evaluation"]["accuracy_before"] == document["evaluation"]["accuracy_after"]
    assert document["evaluation"]["samples"] == 60
    assert document["calibration"]["source"] == f"{data} (training split)"
    assert "hidden1: removed neuron (R²): 2 (1.000), 6 (1.000)" in out


def test_calibration_and_evaluation_data_are_disjoint(capsys, tmp_path, monkeypatch, planted):
    import weightkit.compress.merge.by_data as merge_data_model
    import weightkit.compress.merge.reporting.report as merge_report

    seen = {}
    real_collect, real_compare = merge_data_model.collect_layer_outputs, merge_report.compare_models

    def spy_collect(model, x, taps, **kwargs):
        seen["calibration"] = np.array(x)
        return real_collect(model, x, taps, **kwargs)

    def spy_compare(original, merged, x, y=None, **kwargs):
        seen["evaluation"] = np.array(x)
        return real_compare(original, merged, x, y, **kwargs)

    monkeypatch.setattr(merge_data_model, "collect_layer_outputs", spy_collect)
    monkeypatch.setattr(merge_report, "compare_models", spy_compare)
    _, path, data = planted
    # --no-refit: the one-shot fit collects the calibration activations in one call the spy sees.
    status, _, err = run(capsys, "merge", path, "-o", tmp_path / "small.keras", "--mode", "data", "--data", data,
                         "--ratio", "0.5", "--no-refit")
    assert status == 0, err
    arrays = np.load(data)
    np.testing.assert_array_equal(seen["calibration"], arrays["x_train"])
    np.testing.assert_array_equal(seen["evaluation"], arrays["x_test"])
    assert seen["calibration"].max() < 0.5 <= seen["evaluation"].min()  # no row in both


def test_ratio_report_lists_r2_per_removed_neuron(capsys, tmp_path, mlp_path):
    status, out, err = run(capsys, "merge", mlp_path, "-o", tmp_path / "m.keras", "--mode", "data", "--data",
                           "sklearn:digits", "--ratio", "0.25", "--samples", "400")
    assert status == 0, err
    document = json.loads((tmp_path / "m.json").read_text())
    assert [(l["name"], l["removed"], len(l["removed_neurons"])) for l in document["layers"]] == [
        ("hidden1", 16, 16), ("hidden2", 16, 16)]
    assert all(-1e9 < item["r2"] <= 1.0 for l in document["layers"] for item in l["removed_neurons"])
    assert document["calibration"]["samples"] == 400
    assert set(document["evaluation"]) >= {"accuracy_before", "accuracy_after", "agreement"}
    assert "merged by data (ratio 0.25, 400 calibration inputs)" in out


@pytest.mark.parametrize("argv, message", [
    (["--mode", "data", "--ratio", "0.5"], "--mode data: needs --data DATA; its training split calibrates the merge "
                                           "and its held-out split measures accuracy."),
    (["--mode", "data", "--data", "sklearn:digits", "--threshold", "0.9"],
     "--threshold: only for --mode weights; with --mode data give --ratio F or --max-error E."),
    (["--max-error", "0.1"], "--max-error: only for --mode data (add --mode data --data DATA); --mode weights "
                             "takes --threshold or --ratio."),
])
def test_mode_options_are_checked(capsys, tmp_path, planted, argv, message):
    status, out, err = run(capsys, "merge", planted[1], "-o", tmp_path / "x.keras", *argv)
    assert (status, out, err) == (2, "", f"weightkit merge: error: {message}\n")
    assert not (tmp_path / "x.keras").exists()
