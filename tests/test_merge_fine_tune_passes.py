"""Issues 27/28: ``merge --ratio R --fine-tune N`` merges through the three passes of ``merge_neurons`` (attention
heads, neurons, composite FFNs) before it distils, and ``--layers`` takes a composite FFN's unit name.

Measured 2026-12-07 (2 shared cores): on the zoo's text classifier, ``--ratio 0.5 --fine-tune 2`` takes the heads
2 -> 1 and b0_ffn1 64 -> 32 (9,698 -> 5,522 parameters), accuracy 1.0 -> 1.0 and agreement 1.0 on the 120
test-half sequences; the fine-tune ran 2 epochs, its best epoch 0 (the merge already agreed). Before this change the
same command kept both heads. On an untrained tiny GemmaBackbone, ``layers=["decoder_block_0/ffw_gating"]`` by data at
ratio 0.25 takes every block's FFN 16 -> 12 (the neuron merge refused the name before).
"""

import json

import numpy as np
import pytest

from weightkit._common import run_cli


@pytest.fixture(scope="session")
def text_attention(trained_transformer, tmp_path_factory):
    """``(model path, .npz path)``: the zoo's text classifier (one MultiHeadAttention of 2 heads), trained once."""
    folder, data = trained_transformer("text_attention")
    npz = tmp_path_factory.mktemp("fine_tune_passes") / "order.npz"
    np.savez(npz, x=np.concatenate([data.x_train, data.x_test]), y=np.concatenate([data.y_train, data.y_test]))
    return folder / "text_attention.keras", npz


def test_ratio_with_fine_tune_merges_heads_then_distils(text_attention, keras, capsys, tmp_path):
    from weightkit.cli import cli

    model, data = text_attention
    output = tmp_path / "small.keras"
    status = run_cli(cli, ["merge", str(model), "-o", str(output), "--mode", "data", "--data", str(data),
                           "--ratio", "0.5", "--fine-tune", "2"])
    _, err = capsys.readouterr()
    assert status == 0, err
    small = keras.saving.load_model(output)
    assert small.get_layer("b0_mha").num_heads == 1
    document = json.loads((tmp_path / "small.json").read_text())
    heads = [layer for layer in document["layers"] if layer.get("unit") == "heads"]
    assert [(h["name"], h["heads"]["before"], h["heads"]["after"]) for h in heads] == [("b0_mha/heads", 2, 1)]
    assert 1 <= document["fine_tune"]["epochs_run"] <= 2
    assert any(note.startswith("fine-tune: distilled from the original") for note in document["notes"])


@pytest.fixture(scope="session")
def tiny_gemma(keras):
    """An untrained GemmaBackbone (2 blocks, FFN width 16) under a mean-pool softmax, and seeded token inputs."""
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GemmaBackbone(vocabulary_size=50, num_layers=2, num_query_heads=4,
                                              num_key_value_heads=1, hidden_dim=32, intermediate_dim=32,
                                              head_dim=8, name="gemma")
    tokens = keras.Input((6,), dtype="int32", name="token_ids")
    mask = keras.Input((6,), dtype="int32", name="padding_mask")
    x = backbone({"token_ids": tokens, "padding_mask": mask})
    out = keras.layers.Dense(2, activation="softmax", name="probs")(keras.layers.GlobalAveragePooling1D()(x))
    ids = np.random.default_rng(0).integers(0, 50, (64, 6)).astype("int32")
    return keras.Model([tokens, mask], out, name="tiny_gemma"), [ids, np.ones_like(ids)]


def test_layers_takes_a_composite_ffn_unit_name(tiny_gemma):
    from weightkit.compress.merge import merge_neurons
    from weightkit.compress.merge.composites import ffn_units

    model, x = tiny_gemma
    assert list(ffn_units(model)) == ["decoder_block_0/ffw_gating"]
    merged, report = merge_neurons(model, "data", x, ratio=0.25, layers=["decoder_block_0/ffw_gating"])
    widths = {layer.name: (layer.neurons_before, layer.neurons_after) for layer in report.layers}
    assert widths == {"decoder_block_0/ffw_gating": (16, 12), "decoder_block_1/ffw_gating": (16, 12)}
    assert merged.count_params() < model.count_params()
