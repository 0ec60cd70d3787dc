"""Linear chains: found in the graph (weightkit.analysis.structure.linear_chains), folded into one layer (weightkit.compress.fold).

Every model is saved and reloaded before use. Outputs are compared in float32 within 1e-5: the
folded weights are computed in float64 and rounded once, so the only difference is the order of
float32 sums (about 1e-6 at outputs of size 1-10 here).
"""

import json

import numpy as np
import pytest

from weightkit.analysis.structure.linear_chains import LayerNode, conv_geometry, find_linear_chains
from weightkit.compress.fold import batchnorm_affine, fold_conv, fold_dense, fold_linear

TOLERANCE = 1e-5


def _seeded(keras, model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = [rng.normal(0.0, 0.4, w.shape).astype("float32") for w in layer.get_weights()]
        if isinstance(layer, keras.layers.BatchNormalization):
            values[-1] = rng.uniform(0.5, 1.5, values[-1].shape).astype("float32")
        if values:
            layer.set_weights(values)
    return model


def _reloaded(keras, model, tmp_path, name):
    path = tmp_path / f"{name}.keras"
    _seeded(keras, model).save(path)
    return keras.models.load_model(path)


def _builders(keras):
    L = keras.layers
    return {
        "dense_bias": lambda: keras.Sequential([keras.Input((6,)), L.Dense(5), L.Dense(4), L.Dense(3, "softmax")]),
        "dense_no_bias": lambda: keras.Sequential([keras.Input((6,)), L.Dense(5, use_bias=False),
                                                   L.Dense(3, use_bias=False)]),
        "dense_bn_dropout": lambda: keras.Sequential([keras.Input((6,)), L.Dense(5), L.BatchNormalization(),
                                                      L.Dropout(0.4), L.Dense(3, activation="relu")]),
        "conv1d_valid": lambda: keras.Sequential([keras.Input((20, 3)), L.Conv1D(4, 3), L.Conv1D(5, 2, strides=2),
                                                  L.Conv1D(2, 3, dilation_rate=2, activation="relu")]),
        "conv1d_dilated": lambda: keras.Sequential([keras.Input((24, 2)), L.Conv1D(4, 3, dilation_rate=2),
                                                    L.Conv1D(3, 2, dilation_rate=4)]),
        "conv2d_valid_bn": lambda: keras.Sequential([keras.Input((12, 12, 3)), L.BatchNormalization(),
                                                     L.Conv2D(4, 3), L.BatchNormalization(),
                                                     L.Conv2D(5, (2, 3), strides=(2, 1)), L.Conv2D(2, 3)]),
        "conv2d_same_then_1x1": lambda: keras.Sequential([keras.Input((9, 9, 3)), L.Conv2D(6, 3, padding="same"),
                                                          L.BatchNormalization(), L.Conv2D(3, 1, padding="same")]),
    }


@pytest.mark.parametrize("name", ["dense_bias", "dense_no_bias", "dense_bn_dropout", "conv1d_valid",
                                  "conv1d_dilated", "conv2d_valid_bn", "conv2d_same_then_1x1"])
def test_exact_chains_fold_into_one_layer_with_the_same_outputs(keras, tmp_path, name):
    model = _reloaded(keras, _builders(keras)[name](), tmp_path, name)
    folded, report = fold_linear(model)
    assert len(report.chains) == 1 and report.chains[0].folded and report.exact
    weighted = [layer for layer in folded.layers if layer.weights]
    assert len(weighted) == 1
    assert folded.count_params() == report.chains[0].chain.params_after < model.count_params()
    assert report.max_abs_difference < TOLERANCE
    if name == "dense_no_bias":
        assert [len(layer.weights) for layer in folded.layers] == [1]
    path = tmp_path / f"{name}_folded.keras"
    folded.save(path)
    again = keras.models.load_model(path)
    x = np.random.default_rng(1).normal(size=(16, *model.input_shape[1:])).astype("float32")
    np.testing.assert_allclose(again(x), model(x), atol=TOLERANCE)


def test_same_padded_chain_is_left_alone_with_its_reason(keras, tmp_path):
    L = keras.layers
    model = _reloaded(keras, keras.Sequential([keras.Input((10, 10, 3)), L.Conv2D(4, 3, padding="same"),
                                               L.Conv2D(2, 3, padding="same")]), tmp_path, "same")
    folded, report = fold_linear(model)
    assert folded is model and not report.chains[0].folded
    assert report.chains[0].why_not == (
        f"'same' padding in {model.layers[1].name}: it pads {model.layers[0].name}'s output with zeros, where one "
        "folded convolution would pad the chain's input, so the outputs near the borders differ; pass "
        "--approximate to fold it anyway")
    approximated, report = fold_linear(model, approximate=True)
    assert report.chains[0].folded and not report.exact
    assert report.max_abs_difference > TOLERANCE  # the borders changed, and the report says by how much
    assert len([layer for layer in approximated.layers if layer.weights]) == 1


def test_chain_whose_product_is_larger_is_left_alone_unless_always(keras, tmp_path):
    L = keras.layers
    model = _reloaded(keras, keras.Sequential([keras.Input((40,)), L.Dense(4), L.Dense(40)]), tmp_path, "grow")
    _, report = fold_linear(model)
    chain = report.chains[0]
    assert chain.chain.grows and not chain.folded
    assert chain.why_not == "folding would grow it from 364 to 1,640 parameters; pass --always to fold it anyway"
    folded, report = fold_linear(model, always=True)
    assert folded.count_params() == 1640 and report.max_abs_difference < TOLERANCE


def _planted_functional(keras):
    """Two planted chains (a → bn → b; c1 → c2) beside things that are not chains."""
    L = keras.layers
    x = keras.Input((7,), name="x")
    a = L.Dense(6, name="a")(x)
    a = L.BatchNormalization(name="bn")(a)
    b = L.Dense(5, activation="relu", name="b")(a)           # chain 1: a → bn → b
    r = L.Dense(5, activation="relu", name="r")(b)
    s = L.Dense(4, name="s")(r)                              # after a ReLU: the ReLU ends the previous chain
    branch = L.Dense(4, name="branch")(s)                    # s's output is read twice: no chain through it
    side = L.Dense(4, name="side")(s)
    merged = L.Add(name="add")([branch, side])
    c1 = L.Dense(3, name="c1")(merged)
    c2 = L.Dense(2, activation="softmax", name="c2")(L.Dropout(0.2, name="drop")(c1))  # chain 2
    return keras.Model(x, c2, name="planted_chains")


def test_analyze_lists_exactly_the_planted_chains(keras, tmp_path):
    from weightkit.analysis import analyze

    model = _reloaded(keras, _planted_functional(keras), tmp_path, "planted")
    document = json.loads(json.dumps(analyze(model).to_dict()))
    assert [(c["layers"], c["params_before"], c["params_after"], c["exact"]) for c in document["linear_chains"]] == [
        (["a", "bn", "b"], 7 * 6 + 6 + 4 * 6 + 6 * 5 + 5, 7 * 5 + 5, True),
        (["c1", "drop", "c2"], 4 * 3 + 3 + 3 * 2 + 2, 4 * 2 + 2, True)]
    folded, report = fold_linear(model)
    assert report.max_abs_difference < TOLERANCE
    assert [layer.name for layer in folded.layers if layer.weights] == ["b", "r", "s", "branch", "side", "c2"]


def _node(name, cls, inbound, shapes, **config):
    return LayerNode(name, cls, config, tuple(inbound), tuple(shapes))


def test_find_linear_chains_on_plain_nodes():
    dense = [_node("a", "Dense", ["x"], [(4, 8), (8,)]), _node("b", "Dense", ["a"], [(8, 2), (2,)], activation="relu")]
    assert [c.layers for c in find_linear_chains(dense)] == [["a", "b"]]
    shared = dense + [_node("a", "Dense", ["b"], [(4, 8), (8,)])]  # a layer called twice never folds
    assert find_linear_chains(shared) == []
    output = [LayerNode("a", "Dense", {}, ("x",), ((4, 8), (8,)), is_output=True), dense[1]]
    assert find_linear_chains(output) == []  # a's output is a model output: it must stay
    relu = [_node("a", "Dense", ["x"], [(4, 8), (8,)], activation="relu"), dense[1]]
    assert find_linear_chains(relu) == []
    flatten = [LayerNode("a", "Dense", {}, ("x",), ((4, 8), (8,)), output_shape=(8,)),
               LayerNode("f", "Flatten", {}, ("a",), (), output_shape=(8,)), _node("b", "Dense", ["f"], [(8, 2)])]
    assert [c.layers for c in find_linear_chains(flatten)] == [["a", "f", "b"]]


def test_one_tap_same_convolutions_pad_nothing_so_their_chains_are_exact():
    nodes = [_node("a", "Conv2D", ["x"], [(3, 3, 2, 4), (4,)], kernel_size=(3, 3), padding="same"),
             _node("bn", "BatchNormalization", ["a"], [(4,)] * 4, axis=-1),
             _node("b", "Conv2D", ["bn"], [(1, 1, 4, 8), (8,)], kernel_size=(1, 1), padding="same")]
    chain, = find_linear_chains(nodes)
    assert chain.exact and chain.params_after == 3 * 3 * 2 * 8 + 8
    wider = nodes[:2] + [_node("b", "Conv2D", ["bn"], [(3, 3, 4, 8), (8,)], kernel_size=(3, 3), padding="same")]
    assert find_linear_chains(wider)[0].approximable and not find_linear_chains(wider)[0].exact


def test_conv_geometry_kernel_sizes_add_and_strides_multiply():
    assert conv_geometry([{"kernel_size": (3, 3)}, {"kernel_size": (3, 3)}]) == ((5, 5), (1, 1), (1, 1), (5, 5))
    strided = [{"kernel_size": 3, "strides": 2}, {"kernel_size": 3}]
    assert conv_geometry(strided) == ((7,), (2,), (1,), (7,))
    dilated = [{"kernel_size": 3, "dilation_rate": 2}, {"kernel_size": 2, "dilation_rate": 4}]
    assert conv_geometry(dilated) == ((5,), (1,), (2,), (9,))


def test_fold_math_against_sequential_numpy(rng):
    w1, b1, w2, b2 = rng.normal(size=(4, 6)), rng.normal(size=6), rng.normal(size=(6, 3)), rng.normal(size=3)
    scale, shift = batchnorm_affine(rng.uniform(0.5, 2, 6), rng.normal(size=6), rng.normal(size=6),
                                    rng.uniform(0.5, 2, 6), 1e-3)
    x = rng.normal(size=(10, 4))
    kernel, bias = fold_dense([("dense", w1, b1), ("affine", scale, shift), ("dense", w2, b2)])
    np.testing.assert_allclose(x @ kernel + bias, ((x @ w1 + b1) * scale + shift) @ w2 + b2, rtol=1e-5, atol=1e-5)
    k1, k2 = rng.normal(size=(3, 2, 4)), rng.normal(size=(2, 4, 1))
    kernel, bias = fold_conv([("conv", k1, None, (1,), (1,)), ("conv", k2, None, (1,), (1,))], (1,))
    signal = rng.normal(size=(12, 2))

    def conv(s, k):
        return np.stack([np.einsum("kc,kco->o", s[i:i + len(k)], k) for i in range(len(s) - len(k) + 1)])

    assert bias is None and kernel.shape == (4, 2, 1)
    np.testing.assert_allclose(conv(signal, kernel), conv(conv(signal, k1), k2), rtol=1e-5, atol=1e-5)


def test_fold_cli_writes_the_model_and_refuses_bad_output(keras, tmp_path, capsys):
    from click.testing import CliRunner

    from weightkit._common import run_cli
    from weightkit.cli import cli

    model = _reloaded(keras, _builders(keras)["dense_bn_dropout"](), tmp_path, "cli")
    source = str(tmp_path / "cli.keras")
    out = tmp_path / "folded.keras"
    runner = CliRunner()
    result = runner.invoke(cli, ["fold", source, "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "folded: these 4 layers compute one linear map" in result.output
    assert "parameters instead of" in result.output
    report = json.loads((tmp_path / "folded.json").read_text())
    assert report["folded"] == 1 and report["max_abs_difference"] < TOLERANCE
    assert keras.models.load_model(out).count_params() == report["params_after"] < model.count_params()
    assert run_cli(cli, ["fold", source, "-o", str(out), "--quiet"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert run_cli(cli, ["fold", source, "-o", str(tmp_path / "folded.h5")]) == 2
    assert capsys.readouterr().err == (f"weightkit fold: error: -o {tmp_path / 'folded.h5'}: the folded model is "
                                       "saved as a Keras 3 archive; give a name ending in .keras.\n")
    assert run_cli(cli, ["fold", source, "-o", str(out), "--force", "--quiet"]) == 0
