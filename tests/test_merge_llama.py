"""keras-hub's Llama-family decoder blocks: their gated FFNs merge, their attention heads stay with the true reason.

The zoo's hub_llama (a LlamaBackbone of two decoder blocks, 4 query heads on 2 key/value heads, hidden 32, FFN
``down(silu(gate(x)) * up(x))`` 32 -> 64 -> 32 without biases), trained, saved and reloaded: held-out accuracy 1.0 on
the 300 held-out sequences of the order task. Measured 2026-12-07 15:40 UTC on this machine (2 shared cores):

- by data at ratio 0.25, every block's FFN 64 -> 48 (3.3 s): 21,858 -> 18,786 parameters, agreement 1.0, accuracy
  1.0, max softmax difference 0.0017, mean 4.3e-5 (pruning the same neurons without the rebuild: max 0.0054, mean
  1.6e-4; the down projection has no bias, so the fit has no intercept).
- by weights, a planted duplicate neuron (gate and up columns copied, in each block) folds exactly: max output
  difference 2.2e-8 after save and reload; a planted scaled copy stays (silu is not positively homogeneous, and
  ``silu(2g) · 2u`` is no multiple of ``silu(g) · u``: the gated rule merges exact twins only).
- the same planted twin folds in keras-hub's Mistral, Qwen, Qwen3 and Phi3 decoder blocks (their FFNs have the
  same form; untrained, one block, FFN 16 -> 15): max output difference 3.0e-8 each.
"""

import numpy as np
import pytest

from tests.zoo import reloaded
from tests.zoo_transformers import save_token_pairs
from weightkit._common import run_cli
from weightkit.analysis.files.loading import load_model

#: Lowest held-out agreement accepted after the merge by data at ratio 0.25 (measured 1.0).
AGREEMENT_FLOOR = 0.98
#: Each block's FFN entry (its first producer's path: the gate).
BLOCKS = ["transformer_layer_0/feedforward_gate_dense", "transformer_layer_1/feedforward_gate_dense"]
#: Each block's attention, as the heads pass names it.
HEADS = ["transformer_layer_0/self_attention/heads", "transformer_layer_1/self_attention/heads"]
HEADS_REASON = ("LlamaAttention sets its head size to hidden_dim // num_query_heads: fewer query heads would resize "
                "every head kept, so weightkit leaves its heads alone")


@pytest.fixture(scope="module")
def llama(load_transformer):
    """(folder, reloaded trained hub_llama, its Dataset)."""
    return load_transformer("hub_llama")


def _held_out(data, count=100):
    return [a[:count] for a in data.x_test]


def _plant(model, copies):
    """Copy gate and up columns ``source -> (target, scale)`` in every block's FFN (one width for all blocks)."""
    from weightkit.compress.merge.applying.composite_ffn import ffn_sites

    for site in ffn_sites(model):
        for sub in site.producers:  # gate and up alike: one coupled neuron
            kernel, = sub.get_weights()
            for source, (target, scale) in copies.items():
                kernel[:, target] = scale * kernel[:, source]
            sub.set_weights([kernel])
    return model


def test_a_planted_twin_folds_exactly_and_a_scaled_copy_stays(llama, keras):
    from weightkit.compress.merge import merge_neurons

    folder, _, data = llama
    planted = _plant(keras.saving.load_model(folder / "hub_llama.keras"), {3: (7, 1.0), 5: (9, 2.0)})
    planted = reloaded(planted, folder, "hub_llama_planted")
    merged, report = merge_neurons(planted, "weights")
    for path in BLOCKS:
        entry = report.layer(path)
        assert (entry.neurons_before, entry.neurons_after, entry.activation, entry.rule) == (64, 63, "silu", "twin")
        assert [(m["removed"], m["keeper"], m["exact"]) for m in entry.merges] in ([(7, 3, True)], [(3, 7, True)])
        # the scaled copy: correlated, no twin, and silu is not positively homogeneous
        assert [(item["neuron"], item["keeper"]) for item in entry.left_alone] in ([(9, 5)], [(5, 9)])
    merged = reloaded(merged, folder, "hub_llama_planted_merged")
    assert int(merged.get_layer("llama").get_config()["intermediate_dim"]) == 63
    x = _held_out(data)
    # float32 sums in another order: measured 2.2e-8
    np.testing.assert_allclose(merged.predict(x, verbose=0), planted.predict(x, verbose=0), atol=1e-5)


def test_ffn_neurons_merge_by_data_and_the_model_reloads_in_safe_mode(llama):
    from weightkit.compress.merge import merge_neurons

    folder, model, data = llama
    merged, report = merge_neurons(model, "data", data, ratio=0.25, evaluate_on=data)
    for path in BLOCKS:
        entry = report.layer(path)
        assert (entry.neurons_before, entry.neurons_after) == (64, 48)
        assert entry.consumers == [path.split("/")[0] + "/feedforward_output_dense"]
    assert merged.count_params() == report.params_after < report.params_before == model.count_params()
    assert report.evaluation["agreement"] >= AGREEMENT_FLOOR
    merged.save(folder / "hub_llama_by_data.keras")
    again = load_model(folder / "hub_llama_by_data.keras").model  # weightkit's loader: safe mode
    assert int(again.get_layer("llama").get_config()["intermediate_dim"]) == 48
    x = _held_out(data)
    np.testing.assert_allclose(again.predict(x, verbose=0), merged.predict(x, verbose=0), atol=1e-6)


def test_the_attention_heads_stay_with_the_reason(llama):
    from weightkit.compress.merge import merge_neurons

    _, model, _ = llama
    _, report = merge_neurons(model, "weights")
    assert [(s.name, s.type, s.reason) for s in report.skipped if s.name.endswith("/heads")] == [
        (name, "LlamaAttention", HEADS_REASON) for name in HEADS]


def test_cli_merges_the_llama_ffn_by_data(llama, tmp_path, capsys):
    from weightkit.cli import cli

    folder, _, data = llama
    output = tmp_path / "merged.keras"
    status = run_cli(cli, ["merge", str(folder / "hub_llama.keras"), "-o", str(output), "--mode", "data", "--ratio",
                           "0.25", "--data", str(save_token_pairs(data, tmp_path / "tokens.npz"))])
    printed = capsys.readouterr().out
    assert status == 0 and output.exists()
    assert all(path in printed for path in BLOCKS) and "64 → 48" in printed


_SIBLINGS = {"MistralBackbone": {}, "QwenBackbone": {}, "Qwen3Backbone": {"head_dim": 4}, "Phi3Backbone": {}}


@pytest.mark.parametrize("backbone", list(_SIBLINGS))
def test_a_siblings_planted_twin_folds_exactly(backbone, tmp_path, keras):
    """keras-hub's Mistral, Qwen, Qwen3 and Phi3 decoder blocks (untrained) hold the same gated silu FFN."""
    import keras_hub

    from weightkit.compress.merge import merge_neurons

    keras.utils.set_random_seed(0)
    tokens = keras.Input((6,), dtype="int32", name="token_ids")
    mask = keras.Input((6,), dtype="int32", name="padding_mask")
    x = getattr(keras_hub.models, backbone)(vocabulary_size=20, num_layers=1, num_query_heads=4, num_key_value_heads=2,
                                            hidden_dim=16, intermediate_dim=16, name="hub", **_SIBLINGS[backbone])(
        {"token_ids": tokens, "padding_mask": mask})
    model = keras.Model([tokens, mask], keras.layers.Dense(2, activation="softmax", name="probs")(
        keras.layers.GlobalAveragePooling1D(name="pool")(x)))
    model = reloaded(_plant(model, {2: (5, 1.0)}), tmp_path, "planted")
    merged, report = merge_neurons(model, "weights")
    entry = next(e for e in report.layers if not e.name.endswith("/heads"))  # Mistral's, Qwen3's heads come first
    assert (entry.neurons_before, entry.neurons_after, entry.activation, entry.rule) == (16, 15, "silu", "twin")
    merged = reloaded(merged, tmp_path, "merged")
    x = np.random.default_rng(0).integers(0, 20, size=(32, 6)).astype("int32")
    x = [x, np.ones_like(x)]
    # measured 3.0e-8 each
    np.testing.assert_allclose(merged.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
