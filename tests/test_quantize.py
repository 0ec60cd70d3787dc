"""``weightkit quantize`` and weightkit.compress.quantize on real TFLite conversions (small digits models).

Conversions take about half a second each: every converted result is shared through
module-scoped fixtures, and timing repeats are kept small.
"""

import json
import os

import numpy as np
import pytest

from weightkit.analysis.errors import WeightkitError

FAST = {"latency_repeats": 3, "throughput_repeats": 2}
ALL_MODES = ["float32", "dynamic", "float16", "int8", "int8-io", "int16x8"]


@pytest.fixture(scope="module")
def mlp_report(trained_mlp, digits):
    from weightkit.compress.quantize import keras_source, quantize_model

    return quantize_model(keras_source(trained_mlp[0]), ALL_MODES, digits, calibration_samples=100, **FAST)


@pytest.fixture(scope="module")
def cnn_report(trained_cnn, digits_images):
    from weightkit.compress.quantize import keras_source, quantize_model

    return quantize_model(keras_source(trained_cnn[0]), ALL_MODES, digits_images, calibration_samples=100, **FAST)


@pytest.fixture(scope="module")
def wide_mlp_sizes(keras, digits):
    """Byte sizes per mode of an untrained 64-512-512-10 MLP (1.2 MB as float32), so the
    flatbuffer's fixed overhead (a few KB) does not hide the weights' share of the size."""
    from weightkit.compress.quantize import convert_modes, keras_source
    from weightkit.demo.examples import build_wide_mlp

    keras.utils.set_random_seed(0)
    model = build_wide_mlp((512, 512), name="wide")
    modes = ["float32", "dynamic", "float16", "int8"]
    conversions = convert_modes(keras_source(model), modes, calibration=digits.x_train, calibration_samples=50)
    assert [c.error for c in conversions] == [None] * len(modes)
    return {c.mode: len(c.content) for c in conversions}


@pytest.fixture(scope="module")
def elu_report(keras, digits):
    """A model with ELU, which the int8 quantizer leaves in float and 16x8 refuses."""
    from weightkit.compress.quantize import keras_source, quantize_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    x = keras.layers.Dense(32, activation="elu", name="elu_dense")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    return quantize_model(keras_source(model), ALL_MODES, digits, calibration_samples=50, **FAST)


@pytest.mark.parametrize("which", ["mlp", "cnn"])
@pytest.mark.parametrize("mode", ALL_MODES)
def test_every_mode_converts_and_agrees_with_keras(which, mode, mlp_report, cnn_report):
    contents, report = {"mlp": mlp_report, "cnn": cnn_report}[which]
    row = report.mode(mode)
    assert row.status == "ok", row.error
    assert row.bytes == len(contents[mode]) > 0
    # Agreement on 359 held-out digits: float32 and float16 reproduce Keras (the output bound below), so
    # at most one digit whose top two classes tie within float rounding may flip (seen once in a fresh
    # venv: 358/359 with float32 outputs within 1e-5); the 8-bit modes may flip the few samples whose
    # top two classes are within the quantization step.
    assert row.agreement >= (358 / 359 if mode in ("float32", "float16") else 0.97)
    assert row.drop <= 2.0
    assert row.mean_abs_diff < (1e-5 if mode == "float32" else 2e-2)
    assert len(row.per_class_accuracy_change) == 10
    assert row.latency_ms > 0 and row.throughput > 0


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_quantized_files_are_smaller_in_the_expected_order(which, mlp_report, cnn_report):
    report = {"mlp": mlp_report, "cnn": cnn_report}[which][1]
    ratio = {row.mode: row.size_ratio for row in report.modes}
    assert ratio["float32"] == 1.0
    # Small models: a few KB of flatbuffer overhead lift every ratio above the ideal 1/4 and 1/2.
    assert ratio["int8"] < 0.45 and ratio["dynamic"] < 0.45 and ratio["int8-io"] <= ratio["int8"]
    assert ratio["int8"] < ratio["float16"] < 0.65


def test_sizes_are_a_quarter_and_a_half_of_float32_on_a_wider_model(wide_mlp_sizes):
    ratio = {mode: size / wide_mlp_sizes["float32"] for mode, size in wide_mlp_sizes.items()}
    for mode in ("dynamic", "int8"):
        assert 0.24 <= ratio[mode] <= 0.27, (mode, ratio[mode])
    assert 0.49 <= ratio["float16"] <= 0.52


def test_reference_row_is_the_keras_model(mlp_report, trained_mlp):
    report = mlp_report[1]
    assert report.reference.kind == "Keras"
    assert report.reference.accuracy == pytest.approx(trained_mlp[1], abs=1e-6)
    assert report.drop_basis == "accuracy" and report.output_kind == "multiclass"
    assert report.n_samples == 359


def test_int8_io_model_runs_with_quantized_io(cnn_report, digits_images):
    from weightkit.compress.quantize import TFLiteModel

    contents = cnn_report[0]
    io_model, float_io = TFLiteModel(contents["int8-io"]), TFLiteModel(contents["int8"])
    assert io_model.input_dtype == np.int8 and io_model.output_dtype == np.int8
    assert float_io.input_dtype == np.float32 and float_io.output_dtype == np.float32
    raw = io_model.run_batch(np.zeros((4, 8, 8, 1), np.int8))
    assert raw.dtype == np.int8 and raw.shape == (4, 10)
    x = digits_images.x_test[:100]
    # Same integer graph inside; outputs differ by at most one output quantization step (1/256).
    np.testing.assert_allclose(io_model.predict(x), float_io.predict(x), atol=1 / 256 + 1e-6)


def test_batched_prediction_equals_one_invoke_per_sample(mlp_report, digits):
    from weightkit.compress.quantize import TFLiteModel

    model = TFLiteModel(mlp_report[0]["dynamic"])
    x = digits.x_test[:70]
    np.testing.assert_allclose(model.predict(x, batch_size=32), model.predict_one_by_one(x), rtol=0, atol=1e-6)


def test_export_choice_is_the_smallest_within_max_drop(mlp_report):
    report = mlp_report[1]
    within = [row for row in report.modes if row.ok and row.drop <= 1.0]
    assert report.exported.mode == min(within, key=lambda row: row.bytes).mode
    assert report.exported.reason.startswith("smallest model (")


def test_an_op_without_integer_quantization_fails_only_the_integer_modes(elu_report):
    contents, report = elu_report
    status = {row.mode: row.status for row in report.modes}
    assert status == {"float32": "ok", "dynamic": "ok", "float16": "ok", "int8": "failed", "int8-io": "failed",
                      "int16x8": "failed"}
    assert report.mode("int8").error == ("not integer-only: the converter left ELU (layer elu_dense) in float (no int8 "
                                         "quantization for it); use dynamic or float16, or replace that layer")
    assert report.mode("int16x8").error == "RuntimeError: Quantization to 16x8-bit not yet supported for op: 'ELU'."
    assert set(contents) == {"float32", "dynamic", "float16"}
    assert report.mode("int8").to_dict()["bytes"] is None


def test_regression_model_reports_mae(keras):
    from weightkit.analysis.data.datasets import load_data
    from weightkit.compress.quantize import keras_source, quantize_model

    data = load_data("sklearn:diabetes", seed=0)
    mean, std = data.x_train.mean(0), data.x_train.std(0)
    data.x_train, data.x_test = (data.x_train - mean) / std, (data.x_test - mean) / std
    keras.utils.set_random_seed(0)
    inputs = keras.Input((10,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(32, activation="relu")(inputs)))
    model.compile(keras.optimizers.Adam(0.05), "mae")
    model.fit(data.x_train, data.y_train, epochs=15, batch_size=64, verbose=0)
    _, report = quantize_model(keras_source(model), ["float32", "dynamic", "int8"], data, **FAST)
    assert report.output_kind == "regression" and report.drop_basis == "mae"
    expected = float(np.mean(np.abs(model.predict(data.x_test, verbose=0)[:, 0] - data.y_test)))
    assert report.reference.mae == pytest.approx(expected, rel=1e-5)
    assert report.reference.accuracy is None
    for row in report.modes:
        assert row.ok and row.accuracy is None and row.per_class_accuracy_change is None
        assert abs(row.mae - expected) < 0.05 * expected  # within 5 % of the float MAE
        reference = report.reference.mae
        assert row.drop == pytest.approx(100 * (row.mae - reference) / reference, rel=1e-6, abs=1e-9)


def test_binary_classifier_agreement_is_the_same_side_of_the_threshold(keras):
    from weightkit.analysis.data.checks import load_data_for_model
    from weightkit.compress.quantize import keras_source, quantize_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((30,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    data = load_data_for_model("sklearn:breast_cancer", model, seed=0)
    # Standardized outside the model: int8 quantizes the input tensor with one scale, which
    # would crush the small-range features of the raw data (a Normalization layer inside the
    # model does not help: its input is still quantized per tensor).
    mean, std = data.x_train.mean(0), data.x_train.std(0)
    data.x_train, data.x_test = (data.x_train - mean) / std, (data.x_test - mean) / std
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=10, batch_size=64, verbose=0)
    _, report = quantize_model(keras_source(model), ["float32", "int8"], data, **FAST)
    assert report.output_kind == "binary" and report.drop_basis == "accuracy"
    probabilities = model.predict(data.x_test, verbose=0)[:, 0]
    assert report.reference.accuracy == pytest.approx(np.mean((probabilities > 0.5) == data.y_test))
    assert report.reference.accuracy > 0.9
    for row in report.modes:
        assert row.ok and row.agreement >= 0.97 and len(row.per_class_accuracy_change) == 2


def test_integer_modes_without_data_are_refused(trained_mlp):
    from weightkit.compress.quantize import keras_source, quantize_model

    with pytest.raises(WeightkitError) as error:
        quantize_model(keras_source(trained_mlp[0]), ["float32", "int8", "int16x8"])
    assert str(error.value) == ("--modes int8,int16x8: need calibration data for the representative dataset; "
                                "pass --data DATA (training inputs) or leave them out of --modes.")


# ---------------------------------------------------------------- command line


def _cli(argv, capsys):
    from weightkit._common import run_cli
    from weightkit.cli import cli

    code = run_cli(cli, argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_writes_every_file_and_the_json_schema(mlp_path, tmp_path, capsys):
    out = tmp_path / "q"
    code, stdout, stderr = _cli(["quantize", mlp_path, "-o", str(out), "--data", "sklearn:digits",
                                 "--calibration-samples", "100", "--quiet"], capsys)
    assert code == 0, stderr
    names = sorted(os.listdir(out))
    assert names == sorted([".weightkit-output", "comparison.json", "comparison.png", "model.tflite"]
                           + [f"model_{m}.tflite" for m in ALL_MODES])
    document = json.loads((out / "comparison.json").read_text())
    assert set(document["reference"]) >= {"bytes", "accuracy", "mae"}
    assert document["reference"]["bytes"] == os.path.getsize(mlp_path)
    keys = {"mode", "status", "error", "path", "bytes", "size_ratio", "accuracy", "agreement", "max_abs_diff",
            "mean_abs_diff", "latency_ms", "throughput"}
    assert [row["mode"] for row in document["modes"]] == ALL_MODES
    for row in document["modes"]:
        assert keys <= set(row) and row["status"] == "ok"
        assert os.path.getsize(out / os.path.basename(row["path"])) == row["bytes"]
    exported = document["exported"]
    assert set(exported) == {"mode", "path", "reason"}
    assert (out / "model.tflite").read_bytes() == (out / f"model_{exported['mode']}.tflite").read_bytes()
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Keras (reference)" in stdout and f"exported {exported['mode']} as {out}/model.tflite" in stdout
    assert "Saved artifact" not in stdout


def test_cli_refuses_a_non_empty_folder_without_force(mlp_path, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    code, stdout, stderr = _cli(["quantize", mlp_path, "-o", str(tmp_path), "--modes", "float32"], capsys)
    assert code == 2
    assert stderr == f"weightkit quantize: error: {tmp_path}: folder is not empty and weightkit did not write it (no .weightkit-output in it), so it is never replaced, not even with --force; choose another output folder or empty it yourself.\n"


def test_cli_without_data_runs_the_data_free_modes_on_random_inputs(mlp_path, tmp_path, capsys):
    out = tmp_path / "q"
    code, stdout, stderr = _cli(["quantize", mlp_path, "-o", str(out), "--export", "float16"], capsys)
    assert code == 0, stderr
    assert ("weightkit: no --data: running float32, dynamic, float16 only; int8, int8-io, int16x8 need "
            "calibration data (--data)") in stderr
    document = json.loads((out / "comparison.json").read_text())
    assert [row["mode"] for row in document["modes"]] == ["float32", "dynamic", "float16"]
    assert document["data"] is None and document["drop_basis"] == "agreement"
    assert document["reference"]["accuracy"] is None
    assert all(row["accuracy"] is None and row["agreement"] >= 0.9 for row in document["modes"])
    assert document["exported"]["mode"] == "float16"
    assert document["exported"]["reason"].startswith("requested with --export")
    assert "no --data: outputs compared on 256 random inputs" in stdout


@pytest.mark.parametrize("argv, message", [
    (["--modes", "float32,int8"], "--modes int8: needs calibration data for the representative dataset; pass "
                                  "--data DATA (training inputs) or choose from float32, dynamic, float16, "
                                  "dynamic-int4, keras-int8, keras-int4, keras-float8, onnx."),
    (["--export", "int8-io"], "--export int8-io: needs calibration data for the representative dataset; pass "
                              "--data DATA (training inputs) or choose from float32, dynamic, float16, "
                              "dynamic-int4, keras-int8, keras-int4, keras-float8, onnx."),
    (["--modes", "float32", "--export", "dynamic"], "--export dynamic: not among --modes float32; add it to --modes."),
    (["--modes", "float8"], "--modes: unknown mode 'float8'; expected a comma-separated list of float32, dynamic, "
                            "float16, int8, int8-io, int16x8, dynamic-int4, int4, keras-int8, keras-int4, "
                            "keras-float8, mixed, onnx."),
])
def test_cli_option_errors_are_one_line(mlp_path, tmp_path, capsys, argv, message):
    code, stdout, stderr = _cli(["quantize", mlp_path, "-o", str(tmp_path / "q")] + argv, capsys)
    assert code == 2
    assert stderr == f"weightkit quantize: error: {message}\n"
    assert not (tmp_path / "q").exists()


def test_cli_takes_a_saved_model_directory(trained_cnn, tmp_path, capsys):
    from weightkit.analysis._tf import silenced_stdout

    saved = tmp_path / "saved"
    with silenced_stdout():
        trained_cnn[0].export(str(saved), format="tf_saved_model", verbose=False)
    out = tmp_path / "q"
    code, stdout, stderr = _cli(["quantize", str(saved), "-o", str(out), "--data", "sklearn:digits",
                                 "--modes", "float32,int8-io", "--quiet"], capsys)
    assert code == 0, stderr
    document = json.loads((out / "comparison.json").read_text())
    assert document["reference"]["kind"] == "SavedModel"
    assert document["reference"]["accuracy"] == pytest.approx(trained_cnn[1], abs=1e-6)
    assert [(row["mode"], row["status"]) for row in document["modes"]] == [("float32", "ok"), ("int8-io", "ok")]
    assert document["modes"][0]["agreement"] == 1.0 and document["modes"][1]["agreement"] >= 0.97


def test_converter_noise_is_hidden_unless_verbose(mlp_path, tmp_path, capfd):
    """The converter writes to file descriptors 1 and 2 directly: capfd sees what a terminal would."""
    from weightkit._common import run_cli
    from weightkit.cli import cli

    argv = ["quantize", mlp_path, "--data", "sklearn:digits", "--modes", "float32,int8", "--calibration-samples",
            "50", "--quiet"]
    capfd.readouterr()
    assert run_cli(cli, argv + ["-o", str(tmp_path / "quiet")]) == 0
    quiet = capfd.readouterr()
    assert quiet.err == ""
    assert "Saved artifact" not in quiet.out and "fully_quantize" not in quiet.out and "XNNPACK" not in quiet.out
    assert quiet.out.splitlines()[-1].startswith(f"exported int8 as {tmp_path / 'quiet'}/model.tflite: smallest model")
    assert run_cli(cli, argv[:4] + ["--modes", "float32", "-o", str(tmp_path / "loud"), "--verbose"]) == 0
    loud = capfd.readouterr()
    assert "Saved artifact at" in loud.out + loud.err
