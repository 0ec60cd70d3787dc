"""Every zoo form through every command (issue 14): analyze, report, merge, retrain and quantize succeed.

Each form of ``tests/zoo.py`` gets a small labelled ``.npz`` (labels of each output's shape: class
ids for softmax heads, 0/1 masks for per-pixel sigmoids, floats for linear outputs) and an
unlabelled one for the commands that only need inputs. The real CLI runs in process. A planted
exact copy of a hidden neuron is merged with the model's outputs unchanged within 1e-5.
"""

import json

import numpy as np
import pytest
from zoo import ZOO, load_zoo, zoo_inputs, zoo_path

from weightkit.analysis.data.checks import output_activations
from weightkit.analysis.structure.graph import ModelGraph
from weightkit._common import run_cli
from weightkit.cli import cli

N = 40  # samples per .npz: enough for a split, small enough for 2 cores


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo_commands")


def _labels(activation, shape, rng):
    """Labels for one output of batch shape ``shape``: class ids for softmax, 0/1 for sigmoid, else floats."""
    if activation == "softmax":
        return rng.integers(0, shape[-1], size=shape[:-1]).astype("int64")
    if activation == "sigmoid":
        return rng.integers(0, 2, size=shape).astype("int64")  # 0/1 per element: accuracy per pixel
    return rng.normal(size=shape).astype("float32")


def _input_arrays(model, graph):
    inputs = zoo_inputs(model, n=N, seed=1)
    if isinstance(inputs, dict):
        inputs = [inputs[name] for name in graph.input_names]
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


@pytest.fixture(scope="module")
def zoo_data(zoo_dir):
    """``name -> (model path, labelled .npz, unlabelled .npz)`` for every ZOO form."""
    files = {}
    for name in ZOO:
        model = load_zoo(name, zoo_dir)
        graph = ModelGraph(model)
        xs = _input_arrays(model, graph)
        rng = np.random.default_rng(2)
        outputs = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        ys = [_labels(act, out.shape, rng) for act, out in zip(output_activations(model), outputs)]
        x_arrays = {"x": xs[0]} if len(xs) == 1 else {f"x_{n}": x for n, x in zip(graph.input_names, xs)}
        y_arrays = {"y": ys[0]} if len(ys) == 1 else {f"y_{n}": y for n, y in zip(graph.output_names, ys)}
        labelled, unlabelled = zoo_dir / f"{name}_data.npz", zoo_dir / f"{name}_inputs.npz"
        np.savez(labelled, **x_arrays, **y_arrays)
        np.savez(unlabelled, **x_arrays)
        files[name] = (zoo_path(name, zoo_dir), str(labelled), str(unlabelled))
    return files


def _command(kind, model, data, inputs, out, name):
    commands = {
        "analyze": ["analyze", model],
        "analyze_data": ["analyze", model, "--data", inputs],
        "report_data": ["report", model, "--data", inputs, "-o", str(out / "report")],
        "merge": ["merge", model, "-o", str(out / "merged.keras"), "--ratio", "0.3"],
        "merge_data": ["merge", model, "-o", str(out / "merged.keras"), "--mode", "data", "--data", inputs,
                       "--ratio", "0.3"],
        "retrain": ["retrain", model, "--data", data, "-o", str(out / "retrained.keras"), "--epochs", "1"],
        "quantize": ["quantize", model, "--data", data, "-o", str(out / "quantized"),
                     "--modes", "float32,dynamic,int8,int8-io" if name == "embedding_lstm" else "float32,dynamic"],
    }
    return commands[kind]


#: (command, form) where merge leaves every layer alone: recurrent units merge by data only (weights mode cannot
#: fold a unit into the recurrent kernels), and a Bidirectional layer not at all yet.
NOTHING_TO_MERGE = {("merge", name) for name in ("embedding_lstm", "gru_sequences", "simple_rnn",
                                                   "bidirectional_lstm")}
COMMANDS = ["analyze", "analyze_data", "report_data", "merge", "merge_data", "retrain", "quantize"]


@pytest.mark.parametrize("kind", COMMANDS)
@pytest.mark.parametrize("name", list(ZOO))
def test_form_command_succeeds(zoo_data, tmp_path, capsys, name, kind):
    model, data, inputs = zoo_data[name]
    status = run_cli(cli, _command(kind, model, data, inputs, tmp_path, name) + ["-q"])
    captured = capsys.readouterr()
    if (kind, name) in NOTHING_TO_MERGE:
        # Recurrent units (Bidirectional halves too) merge by data only: merge says so and writes nothing.
        assert status == 2 and captured.err.count("\n") == 1, captured.err
        assert "nothing can be merged, so no copy was written" in captured.err
        assert list(tmp_path.iterdir()) == []
        return
    assert status == 0, captured.err
    if kind == "quantize":
        _check_quantized(name, tmp_path / "quantized")
    if kind == "merge_data" and name == "two_outputs":
        document = json.loads((tmp_path / "merged.json").read_text())
        assert set(document["evaluation"]["outputs"]) == {"class_head", "value_head"}


def _check_quantized(name, folder):
    document = json.loads((folder / "comparison.json").read_text())
    modes = {row["mode"]: row for row in document["modes"]}
    assert all(row["status"] == "ok" for row in modes.values()), modes
    if name == "two_outputs":  # agreement per output; accuracy for the labelled softmax head, MAE for the value
        outputs = modes["float32"]["outputs"]
        assert set(outputs) == {"class_head", "value_head"}
        assert outputs["class_head"]["agreement"] == 1.0 and "mae_after" in outputs["value_head"]
    if name == "segmentation_cnn":  # per-pixel accuracy from 0/1 masks
        assert 0.0 <= modes["float32"]["accuracy"] <= 1.0 and modes["float32"]["agreement"] == 1.0
    if name == "embedding_lstm":  # token ids stay int32 in every mode, int8-io included
        from ai_edge_litert.interpreter import Interpreter

        for mode in ("float32", "dynamic", "int8", "int8-io"):
            interpreter = Interpreter(model_path=str(folder / f"model_{mode}.tflite"))
            assert [d["dtype"] for d in interpreter.get_input_details()] == [np.int32], mode
        assert modes["int8"]["agreement"] >= 0.9


# (form, hidden ReLU Dense that gets a planted exact copy): copy neuron 0 into neuron 1.
PLANTED = [("sequential_mlp", "hidden1"), ("nested_sequential", "enc1"), ("shared_dense", "left"),
           ("two_outputs", "trunk")]


def _layer(model, name, keras):
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            try:
                return _layer(layer, name, keras)
            except KeyError:
                pass
    raise KeyError(name)


def _outputs(model, x):
    out = model.predict(x, verbose=0)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


@pytest.mark.parametrize("name, hidden", PLANTED)
def test_planted_copy_merges_exactly(zoo_dir, keras, name, hidden):
    from weightkit.compress import merge_neurons

    model = load_zoo(name, zoo_dir, fresh=True)
    layer = _layer(model, hidden, keras)
    kernel, bias = layer.get_weights()
    kernel[:, 1], bias[1] = kernel[:, 0], bias[0]
    layer.set_weights([kernel, bias])
    x = zoo_inputs(model, n=32, seed=3)
    merged, report = merge_neurons(model, threshold=0.999999)
    before, after = _outputs(model, x), _outputs(merged, x)
    for b, a in zip(before, after):
        # float32 sums in another order: 1e-5 is far above their rounding, far below any real change.
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    if name == "shared_dense":
        # `left` feeds the shared Dense at one call site only; its other call reads `right`, which the
        # planted copy does not reach, so folding it would change that call: the merge refuses it.
        assert _layer(merged, hidden, keras).units == 4
    else:
        assert _layer(merged, hidden, keras).units == layer.units - 1
    if isinstance(model, keras.Sequential):
        assert isinstance(merged, keras.Sequential)
    if name == "nested_sequential":
        nested = merged.get_layer("encoder")
        assert isinstance(nested, keras.Sequential)  # the rebuild keeps it nested, so no "rebuilt as functional"


def test_sequential_holding_a_functional_model_stays_nested(tmp_path, keras):
    from weightkit.compress import merge_neurons

    layers = keras.layers
    a = keras.Input((8,), name="inner_in")
    inner = keras.Model(a, layers.Dense(4, activation="relu", name="inner_dense")(a), name="inner")
    model = keras.Sequential([keras.Input((5,), name="features"), layers.Dense(8, activation="relu", name="d1"),
                              inner, layers.Dense(2, name="head")], name="outer")
    kernel, bias = model.get_layer("d1").get_weights()
    kernel[:, 1], bias[1] = kernel[:, 0], bias[0]
    model.get_layer("d1").set_weights([kernel, bias])
    model.save(tmp_path / "outer.keras")
    model = keras.saving.load_model(tmp_path / "outer.keras")
    merged, _ = merge_neurons(model, threshold=0.999999)
    assert isinstance(merged, keras.Sequential) and merged.get_layer("d1").units == 7
    assert isinstance(merged.get_layer("inner"), keras.Model)  # the inner model now reads 7 values
    assert merged.get_layer("inner").inputs[0].shape[-1] == 7
    x = np.random.default_rng(0).normal(size=(16, 5)).astype("float32")
    np.testing.assert_allclose(merged.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_a_shared_producer_folds_into_the_consumers_of_every_call(tmp_path, keras):
    from weightkit.compress import merge_neurons

    layers = keras.layers
    keras.utils.set_random_seed(0)
    shared = layers.Dense(6, activation="relu", name="shared")
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    model = keras.Model([a, b], [layers.Dense(2, name="head_a")(shared(a)), layers.Dense(3, name="head_b")(shared(b))])
    kernel, bias = shared.get_weights()
    kernel[:, 4], bias[4] = 2.5 * kernel[:, 1], 2.5 * bias[1]  # a positively scaled copy: exact under ReLU
    shared.set_weights([kernel, bias])
    model.save(tmp_path / "shared.keras")
    model = keras.saving.load_model(tmp_path / "shared.keras")
    merged, report = merge_neurons(model, threshold=0.999999)
    assert merged.get_layer("shared").units == 5
    assert {layer.name for layer in report.layers} == {"shared"}
    x = [np.random.default_rng(s).normal(size=(16, 4)).astype("float32") for s in (1, 2)]
    for before, after in zip(model.predict(x, verbose=0), merged.predict(x, verbose=0)):
        np.testing.assert_allclose(after, before, atol=1e-5, rtol=0)
