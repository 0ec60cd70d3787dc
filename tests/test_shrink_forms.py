"""``shrink`` on every form ``merge --mode data`` takes (issue 28): several inputs, several outputs, a regression
(the budget in MAE) and per-element outputs (per-pixel and per-step accuracy), on saved-and-reloaded models.

Labels come from the original's own outputs with a tenth of them changed (seeded), so its accuracy is
about 0.9 and a merge can lose some. Each run is small (one fraction per layer, two probes, float32
only, no fine-tune); what is asserted is the budget, on the validation split shrink chose on.
"""

import json

import numpy as np
import pytest

from weightkit._common import run_cli
from weightkit.cli import cli
from tests.zoo import load_zoo, reloaded, scaled_weights, zoo_inputs

FAST = {"fine_tune_epochs": 0, "modes": ["float32"], "fractions": (0.5,), "max_probes": 2}
# Budgets wide enough that a tiny random model merges something: accuracy points of the first output.
# The per-step GRU (gru_sequences, per-step classes) shrank the same way but took 37 s on 2 busy cores; the per-pixel
# segmentation stands for per-element outputs.
# attention stands for several inputs (a query sequence and a context; two_inputs shrank as well, 15 s): its two heads
# are the only unit a merge can shrink, issue 27's heads merge reached through shrink's search like any layer.
BUDGETS = {"attention": 20.0, "two_outputs": 10.0, "segmentation_cnn": 10.0}


def _noisy_classes(output, rng):
    """Class labels of an output (per element; a one-column sigmoid thresholded at 0.5), a tenth changed."""
    if output.shape[-1] == 1:
        labels = (output > 0.5).astype("int64")
        flip = rng.random(labels.shape) < 0.1
        return np.where(flip, 1 - labels, labels)
    labels = output.argmax(axis=-1)
    flip = rng.random(labels.shape) < 0.1
    return np.where(flip, (labels + 1) % output.shape[-1], labels).astype("int64")


def _dataset(model, y_of, n=300, n_train=200):
    from weightkit.analysis.data.batches import take
    from weightkit.analysis.data.datasets import Dataset

    x = zoo_inputs(model, n, seed=1)
    x = list(x) if isinstance(x, (list, tuple)) else x
    y = y_of(model.predict(x, verbose=0), np.random.default_rng(2))
    train, held = np.arange(n_train), np.arange(n_train, n)
    return Dataset(take(x, train), take(y, train), take(x, held), take(y, held), "zoo", "classification")


def _labels(name):
    if name == "two_outputs":  # a softmax class head and a linear value head: labels for both
        return lambda out, rng: [_noisy_classes(out[0], rng), out[1].astype("float32")]
    return _noisy_classes


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shrink_forms")


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_shrink_keeps_the_budget_on_its_validation_split(name, zoo_dir):
    from weightkit.compress.shrink import Judge, shrink_model, split_for_shrink
    from weightkit.compress.shrink.run import tflite_runner

    model = load_zoo(name, zoo_dir)
    dataset = _dataset(model, _labels(name))
    outcome = shrink_model(model, dataset, max_drop=BUDGETS[name], **FAST)
    result = outcome.result
    assert result.unit == "accuracy"
    splits = split_for_shrink(dataset)
    judge = Judge(model, splits.x_validation, splits.first_labels("validation"))
    assert judge.reference["accuracy"] < 1.0  # the labels leave room to lose
    merged = judge.score(outcome.model)["drop"]
    assert merged == pytest.approx(result.merged["drop"])
    assert merged <= 0.75 * BUDGETS[name] + 1e-9  # the merge's share (quantize_reserve 0.25)
    exported = judge.score(tflite_runner(outcome.model, outcome.tflite))["drop"]
    assert exported <= BUDGETS[name] + 1e-9
    assert outcome.model.count_params() < model.count_params()
    assert len(outcome.model.inputs) == len(model.inputs) and len(outcome.model.outputs) == len(model.outputs)


def test_a_regression_shrinks_within_an_mae_budget_from_the_command_line(zoo_dir, tmp_path, keras, capsys):
    from weightkit.analysis.data.checks import load_data_for_model
    from weightkit.compress.shrink import Judge, split_for_shrink

    L = keras.layers
    inputs = keras.Input((6,))
    hidden = L.Dense(16, activation="relu", name="h2")(L.Dense(16, activation="relu", name="h1")(inputs))
    model = keras.Model(inputs, L.Dense(1, name="value")(hidden), name="regression")
    scaled_weights(model, np.random.default_rng(0))
    model = reloaded(model, zoo_dir, "regression")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 6)).astype("float32")
    y = (model.predict(x, verbose=0) + rng.normal(0, 0.1, size=(300, 1))).astype("float32")
    np.savez(tmp_path / "data.npz", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    out = tmp_path / "out"
    status = run_cli(cli, ["shrink", str(zoo_dir / "regression.keras"), "--data", str(tmp_path / "data.npz"), "-o",
                           str(out), "--max-drop", "0.02", "--fine-tune-epochs", "0", "--modes", "float32"])
    printed = capsys.readouterr().out
    assert status == 0
    document = json.loads((out / "shrink.json").read_text())
    assert document["unit"] == "mae" and "within 0.02 MAE" in " ".join(printed.split())
    splits = split_for_shrink(load_data_for_model(str(tmp_path / "data.npz"), model))
    judge = Judge(model, splits.x_validation, splits.first_labels("validation"), task="regression")
    merged = keras.models.load_model(out / "model.keras")
    added = judge.score(merged)["drop"]  # MAE to the labels, added
    assert added == pytest.approx(document["merged"]["drop"], rel=1e-5)
    assert added <= 0.75 * 0.02 + 1e-9
    assert merged.count_params() < model.count_params()


def test_a_refused_shrink_leaves_no_checkpoint(tmp_path, keras, capsys):
    L = keras.layers
    inputs = keras.Input((4,))
    model = keras.Model(inputs, L.Dense(3, activation="softmax", name="probs")(inputs), name="nothing_to_merge")
    path = tmp_path / "flat.keras"
    model.save(path)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=rng.normal(size=(200, 4)).astype("float32"), y=rng.integers(0, 3, 200))
    out = tmp_path / "out"
    argv = ["shrink", str(path), "--data", str(tmp_path / "data.npz"), "-o", str(out), "--modes", "float32"]
    for _ in range(2):  # the rerun meets the same refusal, not "an interrupted run left its checkpoints"
        assert run_cli(cli, argv) == 2
        err = capsys.readouterr().err
        assert "weightkit: stage original: done in " in err  # refused after a stage was stored in the checkpoint
        assert err.endswith("\nweightkit shrink: error: model 'nothing_to_merge': no layer data-aware merging can "
                            "shrink (Dense, Conv or recurrent layers read by layers a merge can rewrite); quantize it "
                            "instead.\n")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "flat.keras"]
