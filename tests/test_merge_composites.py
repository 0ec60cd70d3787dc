"""FFN neurons inside composite layers merge (issue 27): keras-hub's TransformerEncoder, TransformerDecoder and
Gemma's gated MLP.

The zoo's hub_encoder (two TransformerEncoders, FFN 32-64-32, relu) and hub_gemma (a GemmaBackbone of two
decoder blocks, gate and up 64 -> 64 neurons, down 64 -> 64, no biases), trained and saved and reloaded. Measured
2026-12-07 on this machine (both models at held-out accuracy 1.0 on the 300 held-out sequences of the order task):

- by data at ratio 0.25, every FFN 64 -> 48: hub_encoder 18,178 -> 16,098 parameters, agreement 1.0, max softmax
  difference 0.0133 (pruning the same neurons with no compensation: 0.062); hub_gemma 48,706 -> 42,562 parameters,
  agreement 1.0, max difference 0.0045 (pruned: 0.0039; Gemma's down projection has no bias, so its fit has no
  intercept). The floor below leaves room for another machine's rounding.
- by weights, a planted duplicate neuron (hub_gemma: gate and up columns both, in each block, since the backbone
  builds its blocks at one width) folds exactly: max output difference 6e-8 (encoder) and 1.2e-7 (Gemma) after
  save and reload.
"""

import numpy as np
import pytest

from tests.zoo import reloaded
from weightkit._common import run_cli
from weightkit.analysis.files.loading import load_model

#: Lowest held-out agreement accepted after the merge by data at ratio 0.25 (measured 1.0 on both models).
AGREEMENT_FLOOR = 0.98
#: name -> each block's FFN entry (its first producer's path)
BLOCKS = {"hub_encoder": ["enc0/feedforward_intermediate_dense", "enc1/feedforward_intermediate_dense"],
          "hub_gemma": ["decoder_block_0/ffw_gating", "decoder_block_1/ffw_gating"]}


@pytest.fixture(scope="module")
def hubs(load_transformer):
    """name -> (folder, reloaded trained model, its Dataset) for hub_encoder and hub_gemma."""
    return {name: load_transformer(name) for name in BLOCKS}


def _held_out(data, count=100):
    x = data.x_test
    return [a[:count] for a in x] if isinstance(x, list) else x[:count]


def _ffn(model, block):
    """The FFN sublayers of one composite (hub_encoder's ``enc0`` or hub_gemma's ``decoder_block_0``)."""
    from weightkit.compress.merge.applying.composite_ffn import ffn_sites

    return next(site for site in ffn_sites(model) if site.name == block)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_a_planted_duplicate_ffn_neuron_folds_exactly_by_weights(hubs, name, keras):
    from weightkit.compress.merge import merge_neurons

    folder, _, data = hubs[name]
    planted = keras.saving.load_model(folder / f"{name}.keras")
    for path in BLOCKS[name]:
        for sub in _ffn(planted, path.split("/")[0]).producers:  # gate and up alike: one coupled neuron
            weights = sub.get_weights()
            weights[0][:, 7] = weights[0][:, 3]
            if len(weights) > 1:
                weights[1][7] = weights[1][3]
            sub.set_weights(weights)
    planted = reloaded(planted, folder, f"{name}_planted")
    merged, report = merge_neurons(planted, "weights")
    for path in BLOCKS[name]:
        entry = report.layer(path)
        assert (entry.neurons_before, entry.neurons_after) == (64, 63)
        assert [(m["removed"], m["keeper"], m["exact"]) for m in entry.merges] in ([(7, 3, True)], [(3, 7, True)])
    merged = reloaded(merged, folder, f"{name}_planted_merged")
    x = _held_out(data)
    # float32 sums in another order: measured 6e-8 (encoder) and 1.2e-7 (Gemma)
    np.testing.assert_allclose(merged.predict(x, verbose=0), planted.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("name", list(BLOCKS))
def test_ffn_neurons_merge_by_data_and_the_model_reloads_in_safe_mode(hubs, name):
    from weightkit.compress.merge import merge_neurons

    folder, model, data = hubs[name]
    merged, report = merge_neurons(model, "data", data, ratio=0.25, evaluate_on=data)
    for path in BLOCKS[name]:
        entry = report.layer(path)
        assert (entry.neurons_before, entry.neurons_after) == (64, 48)
        assert entry.consumers[0].startswith(path.split("/")[0] + "/")  # folded into the block's down projection
    assert report.params_after < report.params_before == model.count_params()
    assert merged.count_params() == report.params_after
    assert report.evaluation["agreement"] >= AGREEMENT_FLOOR
    merged.save(folder / f"{name}_by_data.keras")
    again = load_model(folder / f"{name}_by_data.keras").model  # weightkit's loader: safe mode
    block = _ffn(again, BLOCKS[name][0].split("/")[0])
    assert block.n_neurons == 48 and all(tuple(sub.kernel.shape)[1] == 48 for sub in block.producers)
    x = _held_out(data)
    np.testing.assert_allclose(again.predict(x, verbose=0), merged.predict(x, verbose=0), atol=1e-6)


def test_cli_merges_the_encoders_ffn_by_data(hubs, tmp_path, capsys):
    from weightkit.cli import cli

    folder, _, data = hubs["hub_encoder"]
    tokens = tmp_path / "tokens.npz"
    np.savez(tokens, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    output = tmp_path / "merged.keras"
    status = run_cli(cli, ["merge", str(folder / "hub_encoder.keras"), "-o", str(output), "--mode", "data",
                           "--ratio", "0.25", "--data", str(tokens)])
    printed = capsys.readouterr().out
    assert status == 0 and output.exists()
    assert "enc0/feedforward_intermediate_dense" in printed and "64 → 48" in printed


def test_a_backbones_blocks_keep_one_width(hubs, keras):
    """GemmaBackbone builds every block from its one ``intermediate_dim``: a duplicate planted in one block only
    is not merged, and the report says why."""
    from weightkit.compress.merge import merge_neurons

    folder, _, _ = hubs["hub_gemma"]
    planted = keras.saving.load_model(folder / "hub_gemma.keras")
    for sub in _ffn(planted, "decoder_block_0").producers:
        kernel, = sub.get_weights()
        kernel[:, 7] = kernel[:, 3]
        sub.set_weights([kernel])
    merged, report = merge_neurons(planted, "weights")
    first, second = (report.layer(path) for path in BLOCKS["hub_gemma"])
    assert (first.neurons_after, second.neurons_after) == (64, 64)
    assert "builds all its blocks at one width" in " ".join(first.notes)
    assert merged.count_params() == planted.count_params()


def test_a_transformer_decoders_ffn_folds_exactly_by_weights(tmp_path, keras):
    """keras-hub's TransformerDecoder (untrained, gelu: the twin rule) with a planted duplicate FFN neuron."""
    import keras_hub

    from weightkit.compress.merge import merge_neurons

    keras.utils.set_random_seed(0)
    tokens = keras.Input((8,), dtype="int32", name="tokens")
    x = keras_hub.layers.TransformerDecoder(32, 2, activation="gelu", name="dec0")(
        keras.layers.Embedding(20, 16, name="embed")(tokens))
    model = keras.Model(tokens, keras.layers.Dense(2, activation="softmax", name="probs")(
        keras.layers.GlobalAveragePooling1D(name="pool")(x)))
    kernel, bias = model.get_layer("dec0")._feedforward_intermediate_dense.get_weights()
    kernel[:, 5], bias[5] = kernel[:, 2], bias[2]
    model.get_layer("dec0")._feedforward_intermediate_dense.set_weights([kernel, bias])
    model = reloaded(model, tmp_path, "decoder")
    merged, report = merge_neurons(model, "weights")
    entry = report.layer("dec0/feedforward_intermediate_dense")
    assert (entry.neurons_after, entry.rule) == (31, "twin")
    merged = reloaded(merged, tmp_path, "decoder_merged")
    x = np.random.default_rng(0).integers(0, 20, size=(64, 8)).astype("int32")
    # measured 9e-8
    np.testing.assert_allclose(merged.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
