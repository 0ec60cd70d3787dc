"""Transformers in weight analysis (issue 27): attention heads are neurons, EinsumDense rows follow the equation,
composite layers (keras-hub's TransformerEncoder, a Backbone's decoder blocks) are opened under their paths.

The zoo's transformer forms are built untrained (``epochs=0``: analysis needs weights, not accuracy), saved and
reloaded; the planted forms are saved and reloaded again after the plant.
"""

import json

import numpy as np
import pytest

from tests import zoo, zoo_transformers
from weightkit.analysis.kinds.einsum import einsum_axes, einsum_rows
from weightkit.analysis.model_analysis import analyze_model
from weightkit.analysis.files.stored import open_stored

keras = zoo.keras

# Pearson of two identical float32 rows is 1 up to float32 rounding of the centred dot products.
ATOL_PEARSON = 1e-6


@pytest.fixture(scope="module")
def forms(tmp_path_factory):
    """name -> (saved path, reloaded model) of the zoo's four transformer forms, untrained."""
    directory = tmp_path_factory.mktemp("transformers")
    built = {}
    for name in ("vit_digits", "text_attention", "hub_encoder", "hub_gemma"):
        model = zoo_transformers.TRANSFORMER_ZOO[name](directory, epochs=0)
        built[name] = (str(directory / f"{name}.keras"), model)
    return built


def _entries(result):
    return {layer.name: (layer.type, layer.neurons, layer.fan_in) for layer in result.layers}


def test_vit_lists_one_heads_entry_per_attention_layer(forms):
    entries = _entries(analyze_model(forms["vit_digits"][1]))
    # 4 heads; a row: query, key, value kernels (32 x 8 each), output slice (8 x 32), biases 3 x 8.
    assert entries["b0_mha/heads"] == ("MultiHeadAttention", 4, 3 * 32 * 8 + 8 * 32 + 3 * 8)
    assert entries["b1_mha/heads"] == entries["b0_mha/heads"]


def test_text_classifier_lists_its_heads(forms):
    entries = _entries(analyze_model(forms["text_attention"][1]))
    assert entries["b0_mha/heads"] == ("MultiHeadAttention", 2, 3 * 32 * 16 + 16 * 32 + 3 * 16)


def test_hub_encoder_is_opened_under_its_weight_paths(forms):
    result = analyze_model(forms["hub_encoder"][1])
    entries = _entries(result)
    for block in ("enc0", "enc1"):
        assert entries[f"{block}/self_attention_layer/heads"] == ("MultiHeadAttention", 2, 3 * 32 * 16 + 16 * 32 + 48)
        assert entries[f"{block}/feedforward_intermediate_dense"] == ("Dense", 64, 33)
        assert entries[f"{block}/feedforward_output_dense"] == ("Dense", 32, 65)
    assert {s.name for s in result.skipped} == {"embed"}


def test_gemma_query_heads_come_from_the_einsum_equation(forms):
    result = analyze_model(forms["hub_gemma"][1])
    entries = _entries(result)
    # btd,ndh->btnh: 4 query heads, each row d x h = 64 x 16; the MLP's btd,df->btf: 64 neurons of fan-in 64.
    assert entries["decoder_block_0/attention/query/heads"] == ("EinsumDense", 4, 64 * 16)
    assert entries["decoder_block_0/ffw_gating"] == ("EinsumDense", 64, 64)
    assert entries["decoder_block_0/attention/attention_output"] == ("EinsumDense", 64, 4 * 16)
    reasons = {s.name: s.reason for s in result.skipped}
    assert reasons["decoder_block_1/attention/key/heads"] == "only one neuron: nothing to compare it with"


@pytest.mark.parametrize("equation, axes", [
    ("ab,bc->ac", ("ab", "bc", "ac", "c")),
    ("...b,bc->...c", ("b", "bc", "c", "c")),
    ("btd,df->btf", ("btd", "df", "btf", "f")),
    ("bqm,muh->bquh", ("bqm", "muh", "bquh", "uh")),
    ("btnh,nhd->btd", ("btnh", "nhd", "btd", "d")),
])
def test_einsum_neuron_axes_are_the_output_axes_only_the_kernel_brings(equation, axes):
    assert einsum_axes(equation) == axes


def test_einsum_head_rows_are_kernel_slices():
    kernel = np.arange(5 * 3 * 2, dtype=np.float32).reshape(5, 3, 2)  # muh: m=5, u=3 heads, h=2
    bias = np.arange(6, dtype=np.float32).reshape(3, 2)
    part, rows, row_bias = einsum_rows("bqm,muh->bquh", kernel, bias, "uh")
    assert part == "heads" and rows.shape == (3, 10)
    for head in range(3):
        np.testing.assert_array_equal(rows[head], kernel[:, head, :].ravel())
        np.testing.assert_array_equal(row_bias[head], bias[head])


def _plant_duplicate_head(mha):
    """Head 1 becomes a copy of head 0: its query, key, value kernels and biases and its output kernel slice."""
    for dense in (mha.query_dense, mha.key_dense, mha.value_dense):
        kernel = dense.kernel.numpy()
        kernel[:, 1, :] = kernel[:, 0, :]
        dense.kernel.assign(kernel)
        if dense.bias is not None:
            bias = dense.bias.numpy()
            bias[1] = bias[0]
            dense.bias.assign(bias)
    kernel = mha.output_dense.kernel.numpy()
    kernel[1] = kernel[0]
    mha.output_dense.kernel.assign(kernel)


@pytest.mark.parametrize("form, layer, entry", [
    ("vit_digits", lambda m: m.get_layer("b0_mha"), "b0_mha/heads"),
    ("hub_encoder", lambda m: m.get_layer("enc0")._self_attention_layer, "enc0/self_attention_layer/heads"),
])
def test_a_planted_duplicate_head_is_a_group_with_pearson_one(forms, tmp_path, form, layer, entry):
    model = keras.saving.load_model(forms[form][0])
    _plant_duplicate_head(layer(model))
    path = str(tmp_path / "planted.keras")
    model.save(path)
    found = {}
    result = analyze_model(keras.saving.load_model(path), layers=[entry], on_layer=lambda a: found.update(
        pearson=a.matrices.pearson.copy()))
    (analysis,) = result.layers
    assert [0, 1] in [sorted(group)[:2] for group in analysis.groups]
    np.testing.assert_allclose(found["pearson"][0, 1], 1.0, atol=ATOL_PEARSON)
    assert analysis.removable >= 1


@pytest.mark.parametrize("form", ["vit_digits", "text_attention", "hub_encoder"])
def test_the_file_alone_gives_the_keras_paths_heads(forms, form):
    path, model = forms[form]
    matrices = {}

    def keep(source):
        return lambda a: matrices.setdefault(source, {}).update({a.name: (a.matrices.pearson.copy(),
                                                                           a.matrices.mad.copy())})

    by_keras = analyze_model(model, path=path, on_layer=keep("keras")).to_dict()
    by_file = analyze_model(open_stored(path), path=path, on_layer=keep("file")).to_dict()
    # The same entries; skipped layers by name (a keras-hub embedding's reason names the library from the file).
    assert json.dumps(by_file["layers"], indent=1) == json.dumps(by_keras["layers"], indent=1)
    assert [s["name"] for s in by_file["skipped"]] == [s["name"] for s in by_keras["skipped"]]
    heads = [name for name in matrices["keras"] if name.endswith("/heads")]
    assert heads
    for name in heads:  # the same float32 rows: equal matrices (1e-6 allows another summation order)
        for ours, theirs in zip(matrices["file"][name], matrices["keras"][name]):
            np.testing.assert_allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_attention_and_einsum_from_either_file_format_match_keras(tmp_path, ext):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 8))
    h = keras.layers.MultiHeadAttention(3, 4, name="mha")(inputs, inputs)
    out = keras.layers.EinsumDense("btd,dnh->btnh", (5, 2, 3), bias_axes="nh", name="ed")(h)
    path = str(tmp_path / f"small{ext}")
    keras.Model(inputs, out).save(path)
    by_keras = analyze_model(keras.saving.load_model(path), path=path).to_dict()
    by_file = analyze_model(open_stored(path), path=path).to_dict()
    assert json.dumps(by_file, indent=1) == json.dumps(by_keras, indent=1)
    # mha: 3 heads of 3 x (8 x 4) + 4 x 8 weights and 3 x 4 biases; ed: 2 heads of 8 x 3 weights and 3 biases.
    assert [(e["name"], e["neurons"], e["fan_in"]) for e in by_file["layers"]] == [("mha/heads", 3, 140),
                                                                                  ("ed/heads", 2, 27)]


# --- heads on data (analyze --data) ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def planted_heads(tmp_path_factory):
    """(6, 8) -> MultiHeadAttention(4 heads, key_dim 4) -> mean -> Dense(3), saved and reloaded: head 1 a copy of
    head 0, head 2 attending uniformly (zero query and key), head 3 silent (zero output slice)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 8))
    h = keras.layers.MultiHeadAttention(4, 4, name="mha")(inputs, inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(keras.layers.GlobalAveragePooling1D()(h)))
    mha = model.get_layer("mha")
    _plant_duplicate_head(mha)
    for dense in (mha.query_dense, mha.key_dense):
        kernel, bias = dense.kernel.numpy(), dense.bias.numpy()
        kernel[:, 2, :], bias[2] = 0.0, 0.0
        dense.kernel.assign(kernel)
        dense.bias.assign(bias)
    kernel = mha.output_dense.kernel.numpy()
    kernel[3] = 0.0
    mha.output_dense.kernel.assign(kernel)
    return zoo.reloaded(model, tmp_path_factory.mktemp("heads"), "planted_heads")


def test_heads_on_data_find_the_duplicate_the_uniform_and_the_silent_head(planted_heads):
    from weightkit.analysis.activations import analyze_activations

    x = np.random.default_rng(0).normal(size=(64, 6, 8)).astype("float32")
    result = analyze_activations(planted_heads, x, keep_matrices=True)
    heads = result.layer("mha/heads")
    assert [0, 1] in [sorted(group) for group in heads.groups]
    np.testing.assert_allclose(heads.matrices.pearson[0, 1], 1.0, atol=ATOL_PEARSON)
    assert (heads.heads["uniform"], heads.heads["silent"]) == ([2], [3])
    np.testing.assert_allclose(heads.heads["entropy_ratio"][2], 1.0, atol=1e-6)  # exactly uniform weights
    assert heads.heads["contribution"][3] == 0.0
    assert heads.to_extras()["heads"] == heads.heads


def test_heads_of_a_masked_call_are_skipped_with_the_reason(tmp_path):
    from weightkit.analysis.activations import analyze_activations

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 8))
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(inputs, inputs, use_causal_mask=True)
    model = zoo.reloaded(keras.Model(inputs, h), tmp_path, "causal")
    x = np.random.default_rng(0).normal(size=(16, 6, 8)).astype("float32")
    (skipped,) = [s for s in analyze_activations(model, x).skipped if s.name == "mha/heads"]
    assert skipped.reason.startswith("its heads cannot be replayed from its inputs and weights (output differs by ")
    assert skipped.reason.endswith("): a mask or another call option this probe does not apply")


def test_analyze_data_prints_each_layers_heads(planted_heads, tmp_path, capsys):
    from weightkit._common import run_cli
    from weightkit.cli import cli

    path, data = tmp_path / "planted.keras", tmp_path / "x.npz"
    planted_heads.save(path)
    np.savez(data, x=np.random.default_rng(0).normal(size=(64, 6, 8)).astype("float32"))
    status = run_cli(cli, ["analyze", str(path), "--data", str(data), "--json", str(tmp_path / "a.json")])
    out, err = capsys.readouterr()
    assert status == 0, err
    written = json.loads((tmp_path / "a.json").read_text())
    heads = next(layer for layer in written["layers"] if layer["name"] == "mha/heads")["heads"]
    assert (heads["uniform"], heads["silent"]) == ([2], [3])
    status = run_cli(cli, ["analyze", str(path), "--data", str(data)])
    out, err = capsys.readouterr()
    (line,) = [line for line in " ".join(out.split("\n")).split("mha/heads: ")[1:] if "attention entropy" in line]
    ratios = ", ".join(f"{v:.2f}" for v in heads["entropy_ratio"])
    contributions = ", ".join(f"{v:.3g}" for v in heads["contribution"])
    assert line.startswith(f"attention entropy / uniform per head {ratios}; contribution per head {contributions}; "
                           "uniform: 2; silent: 3")


def test_the_report_page_tables_each_heads_entropy_and_contribution():
    from types import SimpleNamespace

    from weightkit.reports.activation_html import activation_section_html

    heads = {"entropy": [0.5, 1.0986], "entropy_ratio": [0.455, 1.0], "contribution": [2.5, 0.0], "uniform": [1],
             "silent": [1]}
    layer = SimpleNamespace(extras={"dead": [], "heads": heads, "activation": {
        "samples": 4, "groups": [], "removable": 0, "pearson": {"mean_abs_offdiag": 0.1}}})
    page = activation_section_html(layer)
    assert page.endswith(
        "<h3>Attention heads: entropy (1 = uniform attention) and contribution after the output projection</h3>"
        "<table><tr><th>head</th><th>entropy / uniform</th><th>entropy (nats)</th><th>contribution</th>"
        "<th>flag</th></tr><tr><td>0</td><td>0.455</td><td>0.500</td><td>2.5</td><td></td></tr>"
        "<tr><td>1</td><td>1.000</td><td>1.099</td><td>0</td><td>uniform, silent</td></tr></table>")


@keras.saving.register_keras_serializable(package="weightkit_tests")
class _Block(keras.layers.Layer):
    """A user's own block: attention, then an EinsumDense and a Dense."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mha = keras.layers.MultiHeadAttention(2, 4, name="mha")
        self.up = keras.layers.EinsumDense("btd,df->btf", (None, 12), bias_axes="f", name="up")
        self.down = keras.layers.Dense(8, name="down")

    def build(self, input_shape):
        self.mha.build(input_shape, input_shape)
        self.up.build(input_shape)
        self.down.build(tuple(input_shape[:-1]) + (12,))

    def call(self, x):
        return self.down(self.up(x + self.mha(x, x)))


def test_a_users_own_block_layer_is_opened(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 8))
    model = zoo.reloaded(keras.Model(inputs, _Block(name="block")(inputs)), tmp_path, "block")
    entries = _entries(analyze_model(model))
    assert entries == {"block/mha/heads": ("MultiHeadAttention", 2, 3 * 8 * 4 + 4 * 8 + 3 * 4),
                       "block/up": ("EinsumDense", 12, 9), "block/down": ("Dense", 8, 13)}
