"""The int4-weight TFLite modes (``dynamic-int4``, ``int4``): ai-edge-quantizer on the float32 model, run in LiteRT.

The trained digits MLP of the session fixtures, saved and reloaded (``mlp_path``); one module-scoped
quantization is shared. Measured 2026-12-07 (TF 2.21, ai-edge-quantizer 0.10.0, LiteRT 2.3.0): 38,036
bytes float32, 15,080 dynamic, 8,824 dynamic-int4, 11,008 int4; agreement with Keras 0.983 in both
int4 modes on the 359 test digits (test accuracy 0.9666 against 0.9777).
"""

import json

import numpy as np
import pytest

from weightkit.analysis.errors import WeightkitError

FAST = {"latency_repeats": 3, "throughput_repeats": 2}
INT4 = ["dynamic-int4", "int4"]
# Measured agreement 0.983 in both modes (6 of 359 test digits differ); 0.95 leaves room for another
# TF/quantizer build's rounding while still failing a model whose weights were lost (agreement near 0.1).
AGREEMENT_FLOOR = 0.95
# Without --data the CLI compares on 256 uniform random inputs, far from the digits: measured 0.902 there.
RANDOM_AGREEMENT_FLOOR = 0.8


@pytest.fixture(scope="module")
def int4_run(mlp_path, digits):
    from weightkit.compress.quantize import quantize_model

    return quantize_model(mlp_path, ["float32", "dynamic"] + INT4, digits, calibration_samples=100, **FAST)


def _kernel_types(content):
    """The tensor type name of every FULLY_CONNECTED op's weights (its second input) in a ``.tflite``."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    type_names = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    fully_connected = [i for i, code in enumerate(model.operatorCodes)
                       if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.FULLY_CONNECTED]
    graph = model.subgraphs[0]
    return [type_names[graph.tensors[op.inputs[1]].type] for op in graph.operators if op.opcodeIndex in fully_connected]


@pytest.mark.parametrize("mode", INT4)
def test_int4_modes_convert_with_int4_kernels_smaller_than_dynamic(int4_run, mode):
    contents, report = int4_run
    row = report.mode(mode)
    assert row.ok, row.error
    assert row.converter == "ai-edge-quantizer"
    assert _kernel_types(contents[mode]) == ["INT4", "INT4", "INT4"]  # hidden1, hidden2, classes
    assert _kernel_types(contents["dynamic"]).count("INT8") == 2  # the converter's, for comparison
    assert row.bytes == len(contents[mode]) < report.mode("dynamic").bytes


@pytest.mark.parametrize("mode", INT4)
def test_int4_modes_run_in_litert_with_float_io_and_agree(int4_run, trained_mlp, digits, mode):
    from ai_edge_litert.interpreter import Interpreter

    contents, report = int4_run
    assert report.mode(mode).agreement >= AGREEMENT_FLOOR
    interpreter = Interpreter(model_content=contents[mode])
    (key, signature), = interpreter.get_signature_list().items()
    runner = interpreter.get_signature_runner(key)
    assert runner.get_input_details()[signature["inputs"][0]]["dtype"] == np.float32
    x = digits.x_test.astype(np.float32)
    (out,) = runner(**{signature["inputs"][0]: x}).values()
    assert out.dtype == np.float32 and out.shape == (len(x), 10)
    expected = trained_mlp[0].predict(x, verbose=0).argmax(axis=1)
    assert np.mean(out.argmax(axis=1) == expected) >= AGREEMENT_FLOOR


def test_the_converter_refuses_the_int4_modes():
    from weightkit.compress.quantize.modes import configure_converter

    with pytest.raises(WeightkitError) as error:
        configure_converter(object(), "int4")
    assert str(error.value) == ("mode int4: made by ai-edge-quantizer from the float32 model, not by the converter "
                                "(weightkit.compress.quantize.int4.convert_int4).")


def test_a_quantizer_failure_is_a_failed_row_in_one_line(mlp_path, monkeypatch):
    from weightkit.analysis import load_model
    from weightkit.compress.quantize import int4, keras_source

    def refuse(content):
        raise ValueError("Unsupported op\n  FOO in\tsubgraph 0")

    monkeypatch.setattr(int4, "dynamic_int4", refuse)
    (conversion,) = int4.convert_int4(["float32", "dynamic-int4"], [], keras_source(load_model(mlp_path).model), None)
    assert not conversion.ok
    assert conversion.error == "ai-edge-quantizer failed: ValueError: Unsupported op FOO in subgraph 0"


def test_cli_writes_the_dynamic_int4_file_and_its_row(mlp_path, tmp_path, capsys):
    from weightkit._common import run_cli
    from weightkit.cli import cli

    out = tmp_path / "q"
    code = run_cli(cli, ["quantize", mlp_path, "-o", str(out), "--modes", "float32,dynamic-int4", "--quiet"])
    capsys.readouterr()
    assert code == 0
    assert (out / "model_dynamic-int4.tflite").stat().st_size < (out / "model_float32.tflite").stat().st_size
    document = json.loads((out / "comparison.json").read_text())
    row = next(r for r in document["modes"] if r["mode"] == "dynamic-int4")
    assert row["bytes"] == (out / "model_dynamic-int4.tflite").stat().st_size
    assert row["agreement"] >= RANDOM_AGREEMENT_FLOOR
    assert document["exported"]["mode"] in ("float32", "dynamic-int4")


def test_an_unknown_mode_still_lists_every_mode():
    from weightkit.compress.quantize import parse_modes

    with pytest.raises(WeightkitError) as error:
        parse_modes("float32,int3")
    assert str(error.value) == ("--modes: unknown mode 'int3'; expected a comma-separated list of float32, dynamic, "
                                "float16, int8, int8-io, int16x8, dynamic-int4, int4, keras-int8, keras-int4, "
                                "keras-float8, mixed, onnx.")


def test_a_fused_lstm_stays_float_and_the_note_says_so(keras):
    from weightkit.compress.quantize import keras_source, quantize_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 4)), keras.layers.LSTM(8), keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(size=(64, 8, 4)).astype("float32")
    contents, report = quantize_model(keras_source(model), ["float32"] + INT4, x, calibration_samples=64, **FAST)
    assert all(report.mode(mode).ok for mode in INT4)
    # Not unrolled (an unrolled float32 model is 26,124 bytes here): no larger than the fused float32 model.
    assert all(len(contents[mode]) < 1.1 * len(contents["float32"]) for mode in INT4)
    assert ("dynamic-int4, int4: ai-edge-quantizer has no recipe for the fused UNIDIRECTIONAL_SEQUENCE_LSTM: those "
            "layers stay float") in report.notes
