"""``merge --max-drop`` and ``shrink`` allocate over the FFNs inside composite layers (issues 27 and 28).

The zoo's hub_encoder (two keras-hub TransformerEncoders, FFN 32-64-32) has no other unit a merge can shrink: its
attention sits inside the composites and its one Dense is the output. Each encoder's FFN is a unit named by its
first producer's path, as ``merge_neurons`` reports it. Measured 2026-12-07 (2 shared cores): ``merge --max-drop 1``
kept 18,178 -> 11,288 parameters (FFNs 64 -> 16 and 64 -> 6), 0 points lost on the 150 validation and the 150 test
samples, 22 s.
"""

import json

import numpy as np
import pytest

from weightkit._common import run_cli

UNITS = ["enc0/feedforward_intermediate_dense", "enc1/feedforward_intermediate_dense"]
#: shrink kept small: one fraction per unit, two probes, float32 only, no fine-tune.
FAST = {"fine_tune_epochs": 0, "modes": ["float32"], "fractions": (0.5,), "max_probes": 2}


@pytest.fixture(scope="module")
def encoder(load_transformer):
    """(folder, the reloaded trained hub_encoder, its Dataset)."""
    return load_transformer("hub_encoder")


def test_each_encoders_ffn_is_a_unit(encoder):
    from weightkit.compress.shrink.sensitivity import mergeable_layers

    _, model, _ = encoder
    assert mergeable_layers(model) == {name: 64 for name in UNITS}


def test_merge_max_drop_merges_ffn_neurons_within_the_budget(encoder, tmp_path, capsys):
    from weightkit.analysis.files.loading import load_model
    from weightkit.cli import cli

    folder, model, data = encoder
    tokens = tmp_path / "tokens.npz"
    np.savez(tokens, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    output = tmp_path / "merged.keras"
    status = run_cli(cli, ["merge", str(folder / "hub_encoder.keras"), "-o", str(output), "--mode", "data",
                           "--max-drop", "1", "--data", str(tokens)])
    printed = capsys.readouterr().out
    assert status == 0 and "enc0/feedforward_intermediate_dense" in printed
    document = json.loads(output.with_suffix(".json").read_text())
    entries = {layer["name"]: layer for layer in document["layers"]}
    assert set(entries) <= set(UNITS) and entries
    assert all(entry["neurons"]["after"] < entry["neurons"]["before"] == 64 for entry in entries.values())
    assert all(entry["params"]["after"] < entry["params"]["before"] == 4192 for entry in entries.values())
    merged = load_model(output).model  # weightkit's loader: safe mode
    assert merged.count_params() == document["totals"]["params_after"] < model.count_params()
    assert_max_drop_budget_holds(model, data, merged, document)


def assert_max_drop_budget_holds(model, data, merged, document, max_drop=1.0):
    """The budget holds on the validation half ``merge --max-drop`` chose on (drawn as it draws it), and the report
    says what it lost there."""
    from weightkit.compress.shrink import Judge
    from weightkit.compress.shrink.budget import split_held_out

    (x_val, y_val), _, _ = split_held_out(data.x_test, data.y_test, n_train=len(data.x_train))
    drop = Judge(model, x_val, y_val).score(merged)["drop"]
    assert drop == pytest.approx(document["budget"]["drop"]) and drop <= max_drop


def test_shrink_merges_ffn_neurons_within_the_budget(encoder):
    from weightkit.compress.shrink import shrink_model

    _, model, data = encoder
    outcome = shrink_model(model, data, max_drop=1.0, **FAST)
    removed = outcome.result.merged["removed"]
    assert set(removed) == set(UNITS) and sum(removed.values()) > 0
    assert outcome.model.count_params() < model.count_params()
    assert_merge_within_its_share(model, data, outcome)


def assert_merge_within_its_share(model, data, outcome, max_drop=1.0):
    """shrink's merged model loses on the validation split what its result says, within the merge's share of
    ``max_drop`` (quantize_reserve 0.25)."""
    from weightkit.compress.shrink import Judge, split_for_shrink

    splits = split_for_shrink(data)
    judge = Judge(model, splits.x_validation, splits.first_labels("validation"))
    drop = judge.score(outcome.model)["drop"]
    assert drop == pytest.approx(outcome.result.merged["drop"])
    assert drop <= 0.75 * max_drop + 1e-9  # the merge's share (quantize_reserve 0.25)


def test_a_backbones_blocks_are_one_unit(tmp_path, keras):
    """GemmaBackbone builds every block at its one ``intermediate_dim``: its FFNs are one unit, each block losing as
    many neurons; ``--layers`` naming one block brings the other (an untrained backbone: only the widths matter)."""
    import keras_hub

    from tests.zoo import reloaded
    from weightkit.compress.merge import merge_neurons
    from weightkit.compress.merge.applying.composite_ffn import ffn_sites
    from weightkit.compress.shrink.sensitivity import merge_allocation, mergeable_layers

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GemmaBackbone(vocabulary_size=20, num_layers=2, num_query_heads=2,
                                              num_key_value_heads=1, hidden_dim=8, intermediate_dim=32, head_dim=4,
                                              name="gemma")
    tokens = keras.Input((6,), dtype="int32", name="token_ids")
    mask = keras.Input((6,), dtype="int32", name="padding_mask")
    pooled = keras.layers.GlobalAveragePooling1D(name="pool")(backbone({"token_ids": tokens, "padding_mask": mask}))
    model = reloaded(keras.Model([tokens, mask], keras.layers.Dense(2, activation="softmax", name="probs")(pooled)),
                     tmp_path, "tiny_gemma")
    x = [np.random.default_rng(0).integers(1, 20, (64, 6)).astype("int32"), np.ones((64, 6), "int32")]
    # its query heads (2 on 1 key/value head) are a unit too: tests/test_shrink_gemma_heads.py
    assert mergeable_layers(model) == {"decoder_block_0/attention/heads": 2, "decoder_block_0/ffw_gating": 16}
    merged, removed = merge_allocation(model, x, {"decoder_block_0/ffw_gating": 4})
    assert removed == {"decoder_block_0/ffw_gating": 4}
    assert [(site.name, site.n_neurons) for site in ffn_sites(merged)] == [("decoder_block_0", 12),
                                                                          ("decoder_block_1", 12)]
    _, report = merge_neurons(model, "data", x, ratio=0.25, layers=["decoder_block_0"])
    assert [(entry.name, entry.neurons_after) for entry in report.layers] == [("decoder_block_0/ffw_gating", 12),
                                                                              ("decoder_block_1/ffw_gating", 12)]
