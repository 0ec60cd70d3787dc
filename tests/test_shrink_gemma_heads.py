"""``merge --max-drop`` and ``shrink`` allocate over the query heads of keras-hub's Gemma too.

A GemmaBackbone builds every block from one config, so its query heads are one unit (named by its first block's
entry, ``decoder_block_0/attention/heads``) whose steps are the query heads removed from each key/value group of
every block, beside its FFNs' unit. The zoo's hub_gemma (two blocks, 4 query heads on 1 key/value head, head_dim
16; held-out accuracy 1.0 on the order task), trained, saved and reloaded. Measured 2026-12-07 15:57-15:59 UTC on
this machine (2 cores shared, load 4.5-5.4): ``merge --max-drop 1`` kept 48,706 -> 18,242 parameters (query heads
4 -> 2 and FFN 64 -> 6 in both blocks; before the heads were a unit: 26,434, FFNs alone), 0 points lost on the 150
validation and the 150 test samples, agreement 1.0, 38-43 s (23-26 s before); removing 3 of the 4 heads lost 8.7
points alone.
"""

import json

import numpy as np
import pytest

from tests.test_merge_gemma_heads import _untrained_gemma
from tests.test_shrink_composites import assert_max_drop_budget_holds, assert_merge_within_its_share
from tests.zoo import reloaded
from tests.zoo_transformers import save_token_pairs
from weightkit._common import run_cli

HEADS = ["decoder_block_0/attention/heads", "decoder_block_1/attention/heads"]
FFN = "decoder_block_0/ffw_gating"
#: Lowest test-half agreement of the merge within 1 point (measured 1.0).
AGREEMENT_FLOOR = 0.98
#: shrink kept small: one fraction per unit, two probes, float32 only, no fine-tune.
FAST = {"fine_tune_epochs": 0, "modes": ["float32"], "fractions": (0.5,), "max_probes": 2}


@pytest.fixture(scope="module")
def gemma(load_transformer):
    """(folder, reloaded trained hub_gemma, its Dataset)."""
    return load_transformer("hub_gemma")


def _heads_of(model):
    return int(model.get_layer("gemma").get_config()["num_query_heads"])


def test_a_backbones_query_heads_are_one_unit(gemma):
    from weightkit.compress.merge.composite_heads import head_units
    from weightkit.compress.shrink.sensitivity import mergeable_layers

    _, model, _ = gemma
    assert mergeable_layers(model) == {HEADS[0]: 4, FFN: 64}  # heads before the FFNs, as merge_neurons merges them
    units = head_units(model)
    assert list(units) == [HEADS[0]] and [f"{site.path}/heads" for site in units[HEADS[0]]] == HEADS


def test_a_unit_counts_query_heads_per_key_value_group(keras, tmp_path):
    """4 query heads on 2 key/value heads (one block): a unit of 2, whose step 1 takes one head from each group."""
    from weightkit.compress.merge.composite_heads import head_units
    from weightkit.compress.shrink.sensitivity import merge_allocation, mergeable_layers

    model = _untrained_gemma(keras, tmp_path, 4, 2)
    assert mergeable_layers(model)[HEADS[0]] == 2
    x = [np.random.default_rng(0).integers(0, 20, size=(64, 6)).astype("int32"), np.ones((64, 6), "int32")]
    merged, removed = merge_allocation(model, x, {HEADS[0]: 1})
    assert removed == {HEADS[0]: 1} and _heads_of(merged) == 2
    assert merged.count_params() == model.count_params() - 2 * 2 * 16 * 8  # 2 heads, query and output (16, 8)
    again = reloaded(merged, tmp_path, "gemma_4_2_unit")
    np.testing.assert_allclose(again.predict(x, verbose=0), merged.predict(x, verbose=0), atol=1e-6)
    assert head_units(_untrained_gemma(keras, tmp_path, 2, 2)) == {}  # one query head per key/value head: no unit


def test_merge_max_drop_removes_query_heads_within_the_budget(gemma, tmp_path, capsys):
    from weightkit.analysis.files.loading import load_model
    from weightkit.cli import cli
    from weightkit.compress.shrink.budget import split_held_out

    folder, model, data = gemma
    tokens = save_token_pairs(data, tmp_path / "tokens.npz")
    output = tmp_path / "merged.keras"
    status = run_cli(cli, ["merge", str(folder / "hub_gemma.keras"), "-o", str(output), "--mode", "data",
                           "--max-drop", "1", "--samples", "300", "--data", str(tokens)])
    printed = capsys.readouterr().out
    assert status == 0 and HEADS[0] in printed and "from each key/value group" in printed
    document = json.loads(output.with_suffix(".json").read_text())
    curve = next(c for c in document["budget"]["curves"] if c["name"] == HEADS[0])
    assert curve["neurons"] == 4 and [p["removed"] for p in curve["points"]] == [1, 2, 3]  # 0.9 · 4 rounds to 3
    per_group = document["budget"]["removed"][HEADS[0]]
    layers = {layer["name"]: layer for layer in document["layers"]}
    assert {name: (layers[name]["heads"]["before"], layers[name]["heads"]["after"]) for name in HEADS} == {
        name: (4, 4 - per_group) for name in HEADS}
    assert [name for name in layers if name in HEADS] == HEADS and per_group >= 1
    merged = load_model(output).model  # weightkit's loader: safe mode
    assert _heads_of(merged) == 4 - per_group
    assert merged.count_params() == document["totals"]["params_after"] < model.count_params()
    # The saved model is the one the report evaluated on the test half (drawn as merge --max-drop draws it).
    _, (x_test, _), _ = split_held_out(data.x_test, data.y_test, n_train=len(data.y_train))
    before, after = model.predict(x_test, verbose=0), merged.predict(x_test, verbose=0)
    evaluation = document["evaluation"]
    assert np.abs(after - before).max() == pytest.approx(evaluation["max_abs_output_difference"], rel=1e-4)
    assert np.mean(after.argmax(1) == before.argmax(1)) == pytest.approx(evaluation["agreement"])
    assert evaluation["agreement"] >= AGREEMENT_FLOOR
    assert_max_drop_budget_holds(model, data, merged, document)


def test_shrink_removes_query_heads_within_the_budget(gemma):
    from weightkit.compress.shrink import shrink_model

    _, model, data = gemma
    outcome = shrink_model(model, data, max_drop=1.0, **FAST)
    removed = outcome.result.merged["removed"]
    assert set(removed) <= {HEADS[0], FFN} and removed.get(HEADS[0], 0) == 2  # 0.5 · 4 from the one group
    assert _heads_of(outcome.model) == 2
    assert_merge_within_its_share(model, data, outcome)


def test_two_backbones_whose_blocks_share_names_are_no_unit(keras, tmp_path):
    """Two GemmaBackbones in one model both name their block ``decoder_block_0``: a unit named so could be either,
    so neither's query heads nor FFN is a budget unit (one backbone alone is, as above)."""
    import keras_hub

    from weightkit.compress.merge.composite_heads import head_units
    from weightkit.compress.merge.composites import ffn_units

    keras.utils.set_random_seed(0)
    tokens, mask = keras.Input((6,), dtype="int32", name="token_ids"), keras.Input((6,), dtype="int32", name="mask")
    pooled = []
    for name, query in (("gemma_a", 4), ("gemma_b", 2)):
        backbone = keras_hub.models.GemmaBackbone(vocabulary_size=20, num_layers=1, num_query_heads=query,
                                                  num_key_value_heads=1, hidden_dim=16, intermediate_dim=32,
                                                  head_dim=8, name=name)
        pooled.append(keras.layers.GlobalAveragePooling1D()(backbone({"token_ids": tokens, "padding_mask": mask})))
    model = reloaded(keras.Model([tokens, mask], keras.layers.Concatenate()(pooled)), tmp_path, "two_gemmas")
    assert head_units(model) == {} and ffn_units(model) == {}
