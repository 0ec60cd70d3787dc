"""The query heads of keras-hub's Mistral and Qwen3 (grouped-query attention, head size set apart) merge as Gemma's.

Their query kernel is ``(d, heads, head_dim)`` (``bqm,muh->bquh``: the head axis second, where Gemma's is first), the
output kernel ``(heads, head_dim, d)``; a MistralBackbone whose ``head_dim`` is None derives it as ``hidden_dim //
num_query_heads``, so the merged backbone is re-created with the head size written out. Two tiny classifiers (a
backbone of vocabulary 50, 2 blocks, 4 query heads on 2 key/value heads, hidden 32, head_dim 8 (Mistral's None,
derived), intermediate 64, mean pool, softmax), trained 4 epochs on the order task, saved and reloaded: held-out
accuracy 1.0 each. Measured 2026-12-07 16:20-16:22 UTC on this machine (2 shared cores):

- by weights, a planted twin in each key/value group (query head 1 a copy of head 0, head 3 of head 2, in every
  block) folds exactly: max output difference 1.2e-7 (Mistral) and 2.7e-7 (Qwen3) after save and reload.
- by data at ratio 0.5 (one query head from each group of each block, 4 → 2; 1.7 s and 2.0 s): agreement 1.0 on the
  300 held-out sequences, mean |softmax difference| 0.0036 and 0.0047 (pruning the same heads without the
  least-squares rebuild: 0.0083 and 0.020). At ratio 0.25 ``round(0.25 · 2)`` is 0: no head goes, with the reason.
"""

import numpy as np
import pytest

from tests.zoo import reloaded
from tests.zoo_transformers import gemma_task

#: Lowest held-out agreement after merging half the query heads by data (measured 1.0 for both).
AGREEMENT_FLOOR = 0.97
#: Highest mean |softmax difference| after that merge (measured 0.0036 and 0.0047).
MEAN_DIFFERENCE_CEILING = 0.015
#: Each block's query heads, as the report names them.
HEADS = ["transformer_layer_0/self_attention/heads", "transformer_layer_1/self_attention/heads"]
#: Backbone class -> its head size argument (None: Mistral derives 32 // 4 = 8).
BACKBONES = {"MistralBackbone": None, "Qwen3Backbone": 8}


def _classifier(keras, backbone, *, heads=4, key_value=2, layers=2, vocabulary=50, length=12, intermediate=64,
                head_dim=8):
    import keras_hub

    keras.utils.set_random_seed(0)
    tokens = keras.Input((length,), dtype="int32", name="token_ids")
    mask = keras.Input((length,), dtype="int32", name="padding_mask")
    x = getattr(keras_hub.models, backbone)(vocabulary_size=vocabulary, num_layers=layers, num_query_heads=heads,
                                            num_key_value_heads=key_value, hidden_dim=32,
                                            intermediate_dim=intermediate, head_dim=head_dim, name="hub")(
        {"token_ids": tokens, "padding_mask": mask})
    return keras.Model([tokens, mask], keras.layers.Dense(2, activation="softmax", name="probs")(
        keras.layers.GlobalAveragePooling1D(name="pool")(x)))


@pytest.fixture(scope="module")
def trained(keras, tmp_path_factory):
    """``{backbone: (folder, reloaded trained classifier)}`` and the order task's Dataset."""
    folder, data = tmp_path_factory.mktemp("mistral_heads"), gemma_task()
    models = {}
    for backbone, head_dim in BACKBONES.items():
        model = _classifier(keras, backbone, head_dim=head_dim)
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
        model.fit(data.x_train, data.y_train, epochs=4, batch_size=32, verbose=0)
        models[backbone] = reloaded(model, folder, backbone)
    return folder, models, data


def _backbone(model):
    """``(num_query_heads, head_dim)`` of the model's backbone config, and its blocks' query kernel shapes."""
    from weightkit.compress.merge.applying.composite_heads import head_sites

    config = model.get_layer("hub").get_config()
    return (config["num_query_heads"], config["head_dim"],
            [tuple(site.sub("query").kernel.shape) for site in head_sites(model)])


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_a_planted_twin_in_each_group_folds_exactly_by_weights(trained, backbone, keras):
    from weightkit.compress.merge import merge_neurons
    from weightkit.compress.merge.applying.composite_heads import head_sites

    folder, _, data = trained
    planted = keras.saving.load_model(folder / f"{backbone}.keras")
    assert _backbone(planted) == (4, BACKBONES[backbone], [(32, 4, 8)] * 2)  # the head axis second
    for site in head_sites(planted):
        kernel = site.query_kernel()  # (heads, d, head_dim)
        kernel[1], kernel[3] = kernel[0], kernel[2]  # heads 0, 1 read key/value head 0; heads 2, 3 head 1
        site.set_query_kernel(kernel)
    planted = reloaded(planted, folder, f"{backbone}_planted")
    merged, report = merge_neurons(planted, "weights")
    for name in HEADS:
        entry = report.layer(name)
        assert (entry.neurons_before, entry.neurons_after) == (4, 2)
        assert [(m["removed"], m["keeper"], m["exact"]) for m in entry.merges] == [(1, 0, True), (3, 2, True)]
    merged = reloaded(merged, folder, f"{backbone}_planted_merged")
    assert _backbone(merged) == (2, 8, [(32, 2, 8)] * 2)  # Mistral's None written out: the heads keep their size
    x = data.x_test
    # float32 sums in another order: measured 1.2e-7 and 2.7e-7
    np.testing.assert_allclose(merged.predict(x, verbose=0), planted.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_query_heads_merge_by_data_one_from_each_group(trained, backbone):
    from weightkit.compress.merge.applying.composite_heads import cut_composite_heads, head_sites
    from weightkit.compress.merge.composite_heads import merge_composite_heads

    folder, models, data = trained
    model = models[backbone]
    merged, entries, skipped = merge_composite_heads(model, "data", data, {"ratio": 0.5})
    assert skipped == [] and [e.name for e in entries] == HEADS
    for entry in entries:
        removed = sorted(item["neuron"] for item in entry.removed)
        assert (entry.neurons_before, entry.neurons_after) == (4, 2) and removed[0] in (0, 1) and removed[1] in (2, 3)
    assert merged.count_params() == model.count_params() - 2 * 2 * (32 * 8 + 8 * 32)  # 2 blocks, 2 heads each
    again = reloaded(merged, folder, f"{backbone}_by_data")
    assert _backbone(again) == (2, 8, [(32, 2, 8)] * 2)
    x = data.x_test
    before, after = model.predict(x, verbose=0), again.predict(x, verbose=0)
    np.testing.assert_allclose(after, merged.predict(x, verbose=0), atol=1e-6)
    assert np.mean(before.argmax(1) == after.argmax(1)) >= AGREEMENT_FLOOR
    assert np.mean(np.abs(after - before)) <= MEAN_DIFFERENCE_CEILING
    pruned = cut_composite_heads(model, [(site, sorted(set(range(4)) - {i["neuron"] for i in e.removed}),
                                          site.output_kernel(), None) for site, e in zip(head_sites(model), entries)])
    assert np.mean(np.abs(after - before)) < np.mean(np.abs(pruned.predict(x, verbose=0) - before))


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_a_quarter_takes_one_head_from_each_group_of_four(backbone, keras, tmp_path):
    """8 query heads on 2 key/value heads (untrained, one block, head size 32 // 8 = 4): ratio 0.25 takes one head
    from each group, and the rebuilt heads keep size 4 (not 32 // 6); of 2 per group, round(0.25 · 2) = 0 take none."""
    from weightkit.compress.merge.composite_heads import merge_composite_heads

    model = reloaded(_classifier(keras, backbone, heads=8, layers=1, vocabulary=20, length=6, intermediate=16,
                                 head_dim=None if backbone == "MistralBackbone" else 4), tmp_path, "eight")
    x = [np.random.default_rng(0).integers(0, 20, size=(64, 6)).astype("int32"), np.ones((64, 6), "int32")]
    merged, entries, _ = merge_composite_heads(model, "data", x, {"ratio": 0.25})
    removed = sorted(item["neuron"] for item in entries[0].removed)
    assert len(removed) == 2 and removed[0] < 4 <= removed[1]
    again = reloaded(merged, tmp_path, "eight_merged")
    assert _backbone(again) == (6, 4, [(32, 6, 4)])
    np.testing.assert_allclose(again.predict(x, verbose=0), merged.predict(x, verbose=0), atol=1e-6)
    _, entries, skipped = merge_composite_heads(again, "data", x, {"ratio": 0.25})  # 6 on 2: groups of 3 -> 1 each
    assert [e.neurons_after for e in entries] == [4]
    four = reloaded(_classifier(keras, backbone, layers=1, vocabulary=20, length=6, intermediate=16), tmp_path, "four")
    _, entries, skipped = merge_composite_heads(four, "data", x, {"ratio": 0.25})
    assert entries == [] and [(s.name, s.reason) for s in skipped] == [
        (HEADS[0], "round(0.25 · 2 query heads per key/value head) = 0: no head removed")]


def test_a_backbones_query_heads_are_one_unit_shrink_allocates_over(trained):
    from weightkit.compress.merge.composite_heads import head_units
    from weightkit.compress.shrink.sensitivity import merge_allocation, mergeable_layers

    folder, models, data = trained
    model = models["MistralBackbone"]
    assert mergeable_layers(model) == {HEADS[0]: 2, "transformer_layer_0/feedforward_gate_dense": 64}
    assert [[f"{site.path}/heads" for site in sites] for sites in head_units(model).values()] == [HEADS]
    x = [a[:64] for a in data.x_train]
    merged, removed = merge_allocation(model, x, {HEADS[0]: 1})  # one step: one head from each group of each block
    assert removed == {HEADS[0]: 1} and merged.count_params() == model.count_params() - 2 * 2 * (32 * 8 + 8 * 32)
    again = reloaded(merged, folder, "mistral_unit")
    assert _backbone(again) == (2, 8, [(32, 2, 8)] * 2)
    np.testing.assert_allclose(again.predict(x, verbose=0), merged.predict(x, verbose=0), atol=1e-6)


def test_one_query_head_per_key_value_head_is_left_alone_with_the_reason(keras, tmp_path):
    from weightkit.compress.merge import merge_neurons

    model = reloaded(_classifier(keras, "MistralBackbone", key_value=4, layers=1, vocabulary=20, length=6,
                                 intermediate=16, head_dim=None), tmp_path, "mha")
    _, report = merge_neurons(model, "weights")
    assert [(s.name, s.type, s.reason) for s in report.skipped if s.name.endswith("/heads")] == [
        (HEADS[0], "CachedMistralAttention", "one query head per key/value head (4 and 4): nothing to merge")]
