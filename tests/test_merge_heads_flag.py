"""``merge_neurons(..., heads=False)`` skips the attention heads pass alone: the FFNs inside keras-hub's
TransformerEncoder still merge (issue 27's composite pass), on the zoo's hub_encoder saved and reloaded.

Before, ``heads=False`` returned the neuron merge's result directly and the composite FFN pass never ran:
the hub encoder (whose only mergeable units are its two FFNs and its attention heads) came back with
nothing merged.
"""

import numpy as np

from tests.zoo import reloaded

#: Each encoder's FFN entry, named by its first producer's path.
FFNS = ["enc0/feedforward_intermediate_dense", "enc1/feedforward_intermediate_dense"]
#: Lowest held-out agreement accepted at ratio 0.25 (test_merge_composites measured 1.0 with the heads pass too).
AGREEMENT_FLOOR = 0.98


def _heads(model):
    """``{encoder: its self-attention's number of heads}``."""
    return {name: model.get_layer(name)._self_attention_layer.num_heads for name in ("enc0", "enc1")}


def test_heads_false_still_merges_the_ffns_inside_composite_layers(load_transformer):
    from weightkit.compress.merge import merge_neurons

    folder, model, data = load_transformer("hub_encoder")
    merged, report = merge_neurons(model, "data", data, ratio=0.25, evaluate_on=data, heads=False)
    assert [(e.name, e.neurons_before, e.neurons_after) for e in report.layers] == [(FFNS[0], 64, 48),
                                                                                   (FFNS[1], 64, 48)]
    assert not any(e.name.endswith("/heads") for e in report.layers)
    assert report.params_after < report.params_before == model.count_params()
    assert merged.count_params() == report.params_after
    assert report.evaluation["agreement"] >= AGREEMENT_FLOOR
    again = reloaded(merged, folder, "hub_encoder_heads_false")
    assert _heads(again) == _heads(model)  # the heads pass did not run
    x = data.x_test[:64]
    np.testing.assert_allclose(again.predict(x, verbose=0), merged.predict(x, verbose=0), atol=1e-6)


def test_heads_false_picks_a_composite_ffn_by_its_path(load_transformer):
    """``layers`` names a composite FFN by its path (as the report does) with ``heads=False`` too."""
    from weightkit.compress.merge import merge_neurons

    _, model, data = load_transformer("hub_encoder")
    merged, report = merge_neurons(model, "data", data, ratio=0.25, layers=[FFNS[1]], heads=False)
    assert [(e.name, e.neurons_after) for e in report.layers] == [(FFNS[1], 48)]
    assert merged.count_params() < model.count_params()
