"""``weightkit shrink``: per-layer sensitivity, allocation, distillation and quantization on a tiny digits MLP."""

import json
import os

import numpy as np
import pytest

from weightkit._common import run_cli
from weightkit.cli import cli

FAST = ["--fine-tune-epochs", "2", "--modes", "float32,int8"]


@pytest.fixture(scope="module")
def tiny_path(digits, keras, tmp_path_factory):
    """A 64-32-10 digits MLP (one mergeable layer: the cheapest model with something to shrink), saved."""
    from weightkit.demo.examples import build_wide_mlp, train_example

    model, _ = train_example(build_wide_mlp((32,), name="tiny_mlp"), digits, epochs=20, seed=0)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    model.save(path)
    return str(path)


@pytest.fixture(scope="module")
def shrunk(tiny_path, digits, keras, tmp_path_factory):
    """One run on a 64-32-10 digits MLP, interrupted after its search stage by the library and
    finished by ``weightkit shrink --resume``: (status, output folder, stages seen by each half, CLI stderr)."""
    from weightkit.compress.shrink import shrink_model
    from weightkit.commands.shrink import work_folder

    out = tmp_path_factory.mktemp("shrink") / "out"
    seen = []

    def stop_after_search(stage, seconds, resumed):
        seen.append((stage, resumed))
        if stage == "search":
            raise KeyboardInterrupt

    # The settings the command passes for FAST and --max-drop 2, so that --resume accepts the checkpoint.
    with pytest.raises(KeyboardInterrupt):
        shrink_model(keras.models.load_model(tiny_path), digits, max_drop=2.0, fine_tune_epochs=2,
                     modes=["float32", "int8"], work_dir=work_folder(str(out)), on_stage=stop_after_search)
    checkpoint = sorted(os.listdir(work_folder(str(out))))
    capture = tmp_path_factory.mktemp("shrink-log") / "stderr.txt"
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = run_cli(cli, ["shrink", tiny_path, "--data", "sklearn:digits", "-o", str(out), "--max-drop", "2",
                               "--resume", *FAST])
    capture.write_text(err.getvalue())
    return status, out, seen, checkpoint, err.getvalue()


def _json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_cli_writes_a_smaller_model_within_the_budget_and_every_candidate(shrunk, keras):
    status, out, *_ = shrunk
    assert status == 0
    assert sorted(os.listdir(out)) == [".weightkit-output", "frontier.json", "frontier.png", "model.keras",
                                       "model.tflite", "shrink.json"]
    document = _json(out / "shrink.json")
    export, original = document["export"], document["original"]
    assert export["bytes"] == os.path.getsize(out / "model.tflite")
    assert export["ratio"] == pytest.approx(original["float32_tflite_bytes"] / export["bytes"])
    # 2,410 parameters: the flatbuffer's own bytes (about 3 KB) keep the ratio modest on a model this small.
    assert export["ratio"] > 2.5
    merged = keras.models.load_model(out / "model.keras")
    assert merged.count_params() == document["merged"]["params"] < original["params"]
    # The merge spent at most 3/4 of the 2-point budget on the validation split, the export at most all of it.
    assert document["merged"]["drop"] <= 1.5 + 1e-9
    chosen = document["quantized"]["modes"][export["mode"]]
    assert 100 * (original["validation_accuracy"] - chosen["validation_accuracy"]) <= 2 + 1e-9
    frontier = _json(out / "frontier.json")
    keys = [c["key"] for c in frontier["candidates"]]
    assert keys[:2] == ["original", "original:float32"] and "quantize:int8" in keys
    assert [c["key"] for c in frontier["candidates"] if c["chosen"]] == [f"quantize:{export['mode']}"]
    assert (out / "frontier.png").stat().st_size > 10_000
    assert not (out.parent / ".out.shrink").exists()  # the checkpoints go once the outputs are written
    # Each sensitivity curve removes more neurons at each point, at most all but one.
    for curve in document["sensitivity"]:
        removed = [p["removed"] for p in curve["points"]]
        assert removed == sorted(removed) and removed[-1] <= curve["neurons"] - 1


def test_shrink_and_merge_max_drop_calibrate_and_choose_on_the_same_samples(digits):
    from weightkit.compress.shrink import calibration_inputs, split_for_shrink, split_held_out

    splits = split_for_shrink(digits, seed=3)
    # Every training input calibrates (under the 2,048 cap) and fine-tunes; the held-out split is halved.
    assert splits.sizes() == {"calibration": 1438, "fine_tune": 1438, "validation": 180, "test": 179}
    joined = np.concatenate([splits.indices["validation"], splits.indices["test"]])
    assert sorted(joined.tolist()) == list(range(359))  # a partition of the held-out split
    (x_val, y_val), (x_test, y_test), _ = split_held_out(digits.x_test, digits.y_test, seed=3, n_train=1438)
    np.testing.assert_array_equal(splits.x_validation, x_val)  # what merge --max-drop chooses on
    np.testing.assert_array_equal(splits.y_test, y_test)
    np.testing.assert_array_equal(splits.x_calibration, calibration_inputs(digits.x_train, seed=3)[0])
    np.testing.assert_array_equal(splits.y_fine_tune, digits.y_train)


def test_greedy_path_takes_the_cheapest_error_per_parameter_first():
    from weightkit.compress.shrink import greedy_path

    curves = {"wide": [(0, 0), (100, 0.01), (200, 0.02), (300, 0.5)],
              "narrow": [(0, 0), (10, 0.05), (20, 0.06)]}
    path = greedy_path(curves)
    assert [p.levels for p in path] == [
        {"wide": 0, "narrow": 0}, {"wide": 2, "narrow": 0}, {"wide": 2, "narrow": 2}, {"wide": 3, "narrow": 2}]
    assert [p.cost_removed for p in path] == [0, 200, 220, 320]
    assert path[-1].predicted_error == pytest.approx(0.56)


def test_resume_runs_only_the_stages_left(shrunk, tiny_path, digits, keras):
    status, _, seen, checkpoint, err = shrunk
    assert status == 0
    assert seen == [("original", False), ("stream", False), ("sensitivity", False), ("search", False)]
    assert checkpoint == [".weightkit-output", "merged.keras", "state.json"]  # the marker: shrink's own folder
    for stage in ("original", "stream", "sensitivity", "search"):
        assert f"weightkit: stage {stage}: read from the checkpoint\n" in err
    assert "weightkit: stage quantize: done in " in err


def test_resume_with_other_settings_is_refused(digits, keras, tiny_path, tmp_path):
    from weightkit.analysis.errors import WeightkitError
    from weightkit.compress.shrink import shrink_model

    model = keras.models.load_model(tiny_path)
    options = {"modes": ["float32"], "fractions": (0.5,), "max_probes": 0, "work_dir": str(tmp_path / "work")}
    seen = []

    def stop(stage, seconds, resumed):
        seen.append(stage)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shrink_model(model, digits, on_stage=stop, **options)
    with pytest.raises(WeightkitError) as error:
        shrink_model(model, digits, resume=True, max_drop=3.0, **options)
    assert str(error.value) == (f"--resume: the interrupted run in {tmp_path / 'work'} used other settings "
                                "(max_drop); rerun with the same options, or without --resume.")
    assert seen == ["original"]


@pytest.mark.parametrize("argv, expected", [
    (["--data", "sklearn:diabetes"], "--data sklearn:diabetes: "),
    (["--data", "sklearn:digits", "--modes", "int3"], "--modes: unknown mode 'int3'"),
    (["--data", "sklearn:digits", "--max-drop", "-1"], "Invalid value for '--max-drop'"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_path, tmp_path, capsys, argv, expected):
    out = tmp_path / "x"
    assert run_cli(cli, ["shrink", tiny_path, "-o", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("weightkit shrink: error: ") and expected in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_folder_weightkit_did_not_write_is_refused(tiny_path, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run_cli(cli, ["shrink", tiny_path, "--data", "sklearn:digits", "-o", str(out), "--force"]) == 2
    assert "weightkit did not write it" in capsys.readouterr().err
    assert os.listdir(out) == ["keep.txt"]


@pytest.mark.parametrize("form, units", [("embedding_lstm", {"lstm": 5}), ("simple_rnn", {"rnn": 5}),
                                         ("gru_sequences", {"gru": 5}), ("bidirectional_lstm", {"bilstm": 4}),
                                         ("masked_lstm", {"lstm": 5})])
def test_recurrent_layers_are_units_shrink_can_merge(form, units, tmp_path_factory):
    from weightkit.compress.shrink.sensitivity import mergeable_layers
    from tests.zoo import load_zoo

    # Before issue 28 every one of these was refused ("no layer data-aware merging can shrink").
    assert mergeable_layers(load_zoo(form, tmp_path_factory.mktemp("zoo"))) == units


def test_an_lstm_gets_a_sensitivity_curve(tmp_path_factory):
    from weightkit.compress.shrink import Judge, sensitivity_curves
    from tests.zoo import load_zoo, zoo_inputs

    model = load_zoo("embedding_lstm", tmp_path_factory.mktemp("zoo"))
    judge = Judge(model, zoo_inputs(model, 100, seed=2))
    (curve,) = sensitivity_curves(model, zoo_inputs(model, 200, seed=1), judge.score, fractions=(0.4, 0.8))
    assert curve.name == "lstm" and curve.notes == []
    assert [point["removed"] for point in curve.points] == [2, 4]
    # An LSTM unit owns 4 gates' input and recurrent rows and biases, and a row of the Dense reader.
    assert all(point["cost_removed"] > 0 for point in curve.points)
    assert all(0.0 <= point["agreement"] <= 1.0 and point["drop"] == pytest.approx(100 * (1 - point["agreement"]))
               for point in curve.points)


def test_attention_heads_are_a_unit_shrink_allocates_over(tmp_path_factory):
    from weightkit.compress.shrink import Judge, guided_merge, sensitivity_curves
    from weightkit.compress.shrink.sensitivity import mergeable_layers
    from tests.zoo import load_zoo, zoo_inputs

    # Heads merge by data (issue 27, merge_heads_by_data): shrink's sensitivity and search reach them as "name/heads".
    model = load_zoo("attention", tmp_path_factory.mktemp("zoo"))
    assert mergeable_layers(model) == {"mha/heads": 2}
    judge = Judge(model, zoo_inputs(model, 100, seed=2))
    (curve,) = sensitivity_curves(model, zoo_inputs(model, 200, seed=1), judge.score, fractions=(0.5,))
    assert curve.name == "mha/heads" and curve.notes == []
    # One of two heads: its query, key and value slices (3 x (4 x 2 + 2)) and its output rows (2 x 4).
    assert [(point["removed"], point["cost_removed"]) for point in curve.points] == [(1, 38)]
    # merge --max-drop takes the same unit and reports it as merge_neurons reports heads.
    merged, report = guided_merge(model, zoo_inputs(model, 200, seed=1), evaluate_on=zoo_inputs(model, 100, seed=2),
                                  max_drop=30)
    assert [(layer.name, layer.neurons_before, layer.neurons_after) for layer in report.layers] == [("mha/heads", 2, 1)]
    assert merged.count_params() == model.count_params() - 38
