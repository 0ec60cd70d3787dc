"""The query heads of keras-hub's Gemma (grouped-query attention) merge, by weights and by data.

The zoo's hub_gemma (a GemmaBackbone of two decoder blocks, 4 query heads on 1 key/value head, head_dim 16, held-out
accuracy 1.0 on the 300 held-out sequences of the order task), trained, saved and reloaded. Measured 2026-12-07
15:26 UTC on this machine (2 shared cores):

- by data at ratio 0.25 (heads alone, every block 4 → 3 query heads, 900 calibration inputs, 5.3 s): agreement
  1.0, mean |softmax difference| 0.00054, max 0.050; pruning the same heads without the least-squares rebuild:
  agreement 0.993, mean 0.014, max 0.68. At 0.5 (4 → 2): agreement 1.0, mean 0.00088 (pruned: 1.0, 0.0036). The
  removed heads' contribution rebuilt from the kept ones has R² 0.72 and 0.81: these heads are not duplicates.
- by weights, a planted duplicate query head (head 2's query kernel a copy of head 0's, in every block) folds
  exactly: max output difference 5e-7 after save and reload.
"""

import numpy as np
import pytest

from tests.zoo import reloaded
from weightkit._common import run_cli

#: Lowest held-out agreement after merging 25% of the query heads by data (measured 1.0).
AGREEMENT_FLOOR = 0.98
#: Highest mean |softmax difference| after merging 25% of the query heads by data (measured 0.00054; pruning the
#: same heads without the rebuild: 0.014).
MEAN_DIFFERENCE_CEILING = 0.005
#: Each block's query heads, as the report names them.
HEADS = ["decoder_block_0/attention/heads", "decoder_block_1/attention/heads"]


@pytest.fixture(scope="module")
def gemma(load_transformer):
    """(folder, reloaded trained hub_gemma, its Dataset)."""
    return load_transformer("hub_gemma")


def _heads_of(model):
    return int(model.get_layer("gemma").get_config()["num_query_heads"])


def test_a_planted_duplicate_query_head_folds_exactly_by_weights(gemma, keras):
    from weightkit.compress.merge import merge_neurons
    from weightkit.compress.merge.applying.composite_heads import head_sites

    folder, _, data = gemma
    planted = keras.saving.load_model(folder / "hub_gemma.keras")
    for site in head_sites(planted):
        kernel = site.query_kernel()
        kernel[2] = kernel[0]  # head 2 attends exactly as head 0, through the same key/value head
        site.sub("query").kernel.assign(kernel.astype("float32"))
    planted = reloaded(planted, folder, "hub_gemma_planted_head")
    merged, report = merge_neurons(planted, "weights")
    for name in HEADS:
        entry = report.layer(name)
        assert (entry.neurons_before, entry.neurons_after) == (4, 3)
        assert [(m["removed"], m["keeper"], m["exact"]) for m in entry.merges] == [(2, 0, True)]
        assert [item["neuron"] for item in entry.left_alone] == [0, 1, 3]
        assert "its query kernel differs from head" in entry.left_alone[1]["reason"]
    merged = reloaded(merged, folder, "hub_gemma_planted_head_merged")
    assert _heads_of(merged) == 3
    x = [a[:100] for a in data.x_test]
    # float32 sums in another order: measured 5e-7
    np.testing.assert_allclose(merged.predict(x, verbose=0), planted.predict(x, verbose=0), atol=1e-5)


def test_query_heads_merge_by_data_and_the_model_reloads(gemma, keras):
    from weightkit.compress.merge.applying.composite_heads import cut_composite_heads, head_sites
    from weightkit.compress.merge.composite_heads import merge_composite_heads

    folder, model, data = gemma
    merged, entries, skipped = merge_composite_heads(model, "data", data, {"ratio": 0.25})
    assert skipped == [] and [e.name for e in entries] == HEADS
    assert all((e.neurons_before, e.neurons_after, len(e.removed)) == (4, 3, 1) for e in entries)
    assert _heads_of(merged) == 3 and merged.count_params() == model.count_params() - 2 * 2 * 64 * 16
    again = reloaded(merged, folder, "hub_gemma_heads_by_data")
    x = data.x_test
    before, after = model.predict(x, verbose=0), again.predict(x, verbose=0)
    np.testing.assert_allclose(after, merged.predict(x, verbose=0), atol=1e-6)
    assert np.mean(before.argmax(1) == after.argmax(1)) >= AGREEMENT_FLOOR
    assert np.mean(np.abs(after - before)) <= MEAN_DIFFERENCE_CEILING
    pruned = cut_composite_heads(model, [(site, [h for h in range(4) if h != e.removed[0]["neuron"]],
                                          site.output_kernel(), None) for site, e in zip(head_sites(model), entries)])
    assert np.mean(np.abs(after - before)) < np.mean(np.abs(pruned.predict(x, verbose=0) - before))


def test_cli_merges_gemmas_query_heads_and_ffn_by_data(gemma, tmp_path, capsys):
    import json

    from weightkit.cli import cli

    folder, _, data = gemma
    tokens = tmp_path / "tokens.npz"
    np.savez(tokens, x0_train=data.x_train[0], x1_train=data.x_train[1], y_train=data.y_train,
             x0_test=data.x_test[0], x1_test=data.x_test[1], y_test=data.y_test)
    output = tmp_path / "merged.keras"
    status = run_cli(cli, ["merge", str(folder / "hub_gemma.keras"), "-o", str(output), "--mode", "data",
                           "--ratio", "0.25", "--data", str(tokens)])
    printed = capsys.readouterr().out
    assert status == 0 and output.exists()
    document = json.loads(output.with_suffix(".json").read_text())
    layers = {layer["name"]: layer for layer in document["layers"]}
    assert {name: (layers[name]["heads"]["before"], layers[name]["heads"]["after"]) for name in HEADS} == {
        name: (4, 3) for name in HEADS}
    assert [layer["name"] for layer in document["layers"]] == [
        HEADS[0], "decoder_block_0/ffw_gating", HEADS[1], "decoder_block_1/ffw_gating"]
    assert HEADS[0] in printed and "4 → 3" in printed and "64 → 48" in printed


def _untrained_gemma(keras, tmp_path, query, key_value):
    """An untrained one-block GemmaBackbone (hidden 16, head_dim 8) in a model of inputs [token_ids, padding_mask]."""
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GemmaBackbone(vocabulary_size=20, num_layers=1, num_query_heads=query,
                                              num_key_value_heads=key_value, hidden_dim=16, intermediate_dim=32,
                                              head_dim=8, name="gemma")
    tokens, mask = keras.Input((6,), dtype="int32", name="token_ids"), keras.Input((6,), dtype="int32", name="mask")
    model = keras.Model([tokens, mask], backbone({"token_ids": tokens, "padding_mask": mask}))
    return reloaded(model, tmp_path, f"gemma_{query}_{key_value}")


def test_each_key_value_group_loses_the_same_number_of_query_heads(keras, tmp_path):
    from weightkit.compress.merge.composite_heads import merge_composite_heads

    from weightkit.compress.merge.applying.composite_heads import head_sites

    model = _untrained_gemma(keras, tmp_path, 4, 2)  # heads 0, 1 read key/value head 0; heads 2, 3 head 1
    site, = head_sites(model)
    kernel = site.output_kernel()
    kernel[:2] *= 0.01  # heads 0 and 1 write almost nothing: the cheapest two, but from one group
    site.sub("output").kernel.assign(kernel.astype("float32"))
    x = [np.random.default_rng(0).integers(0, 20, size=(64, 6)).astype("int32"), np.ones((64, 6), "int32")]
    merged, entries, _ = merge_composite_heads(model, "data", x, {"ratio": 0.5})
    removed = sorted(item["neuron"] for item in entries[0].removed)
    assert len(removed) == 2 and removed[0] in (0, 1) and removed[1] in (2, 3)
    assert "from each key/value group (2 in all" in " ".join(entries[0].notes)
    again = reloaded(merged, tmp_path, "gemma_4_2_merged")
    assert _heads_of(again) == 2
    np.testing.assert_allclose(again.predict(x, verbose=0), merged.predict(x, verbose=0), atol=1e-6)


def test_heads_that_cannot_go_are_left_alone_with_their_reasons(keras, tmp_path):
    import keras_hub

    from weightkit.compress.merge import merge_neurons
    from weightkit.compress.merge.composite_heads import merge_composite_heads

    one_each = _untrained_gemma(keras, tmp_path, 2, 2)
    _, entries, skipped = merge_composite_heads(one_each, "weights", None, {})
    assert entries == [] and [(s.name, s.reason) for s in skipped] == [
        ("decoder_block_0/attention/heads", "one query head per key/value head (2 and 2): nothing to merge")]
    four = _untrained_gemma(keras, tmp_path, 4, 1)
    _, entries, skipped = merge_composite_heads(four, "data", None, {"ratio": 0.1})
    assert entries == [] and [s.reason for s in skipped] == [
        "round(0.1 · 4 query heads per key/value head) = 0: no head removed"]
    # keras-hub's TransformerEncoder keeps its refusal: its key_dim is hidden_dim // num_heads
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    x = keras_hub.layers.TokenAndPositionEmbedding(20, 6, 16, name="embed")(tokens)
    x = keras_hub.layers.TransformerEncoder(32, 2, name="enc0")(x)
    encoder = reloaded(keras.Model(tokens, keras.layers.Dense(2, name="probs")(x[:, 0])), tmp_path, "encoder")
    _, report = merge_neurons(encoder, "weights")
    refusal = next(s for s in report.skipped if s.name == "enc0/self_attention_layer/heads")
    assert refusal.reason.startswith("inside the composite layer enc0 (TransformerEncoder), whose own code builds "
                                     "its attention from its config: weightkit cannot rebuild it with fewer heads")
