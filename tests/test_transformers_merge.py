"""Merging inside a transformer block: the zoo's text classifier (one pre-norm block), saved and reloaded.

The Dense FFN's first layer (``b0_ffn1``, gelu) merges, its removed neurons folded into the
down-projection ``b0_ffn2``; attention and the residual stream (``b0_ffn2`` feeds the Add of the
block) are left alone with their reasons. Measured 2026-12-07 on the zoo's model (held-out accuracy
1.0): by data at ratio 0.5, 64 -> 32 FFN neurons (9,698 -> 7,618 parameters), accuracy 1.0 -> 1.0 and
agreement 1.0 on the 300 held-out sequences (still 1.0 at ratio 0.9), max output difference 0.0012
where zeroing the same 32 neurons without compensation gives 0.071; the bounds below leave room for
another machine's rounding.
"""

import numpy as np
import pytest

from tests.zoo import reloaded
from tests.zoo_transformers import TRANSFORMER_TASKS, TRANSFORMER_ZOO

#: Lowest held-out agreement accepted after the merge by data at ratio 0.5 (measured 1.0, see above).
AGREEMENT_FLOOR = 0.98
#: Largest held-out softmax difference accepted after it (measured 0.0012; 0.071 without compensation).
MAX_OUTPUT_DIFFERENCE = 0.01


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    """``(folder, reloaded text classifier, its Dataset)``, trained once for this module."""
    folder = tmp_path_factory.mktemp("transformers_merge")
    return folder, TRANSFORMER_ZOO["text_attention"](folder), TRANSFORMER_TASKS["text_attention"]()


def test_ffn_neurons_merge_by_data_and_attention_is_left_alone_with_its_reason(text_model, keras):
    from weightkit.compress.merge import merge_neurons

    folder, model, data = text_model
    merged, report = merge_neurons(model, "data", data, ratio=0.5, evaluate_on=data)
    ffn = report.layer("b0_ffn1")
    assert (ffn.neurons_before, ffn.neurons_after) == (64, 32)
    assert "b0_ffn2" in ffn.consumers  # the removed neurons are rebuilt in the down-projection
    reasons = {s.name: s.reason for s in report.skipped}
    assert reasons["b0_mha"] == "attention heads are analyzed, not merged yet"
    assert reasons["b0_ffn2"] == "its output feeds b0_res2 (Add), which combines several tensors"
    assert report.evaluation["agreement"] >= AGREEMENT_FLOOR
    assert report.evaluation["max_abs_output_difference"] < MAX_OUTPUT_DIFFERENCE
    again = reloaded(merged, folder, "merged_by_data")
    assert again.get_layer("b0_ffn1").get_weights()[0].shape == (32, 32)
    assert again.get_layer("b0_ffn2").get_weights()[0].shape == (32, 32)


def test_a_planted_duplicate_ffn_neuron_folds_exactly_by_weights(text_model, keras):
    from weightkit.compress.merge import merge_neurons

    folder, model, data = text_model
    planted = keras.saving.load_model(folder / "text_attention.keras")
    ffn1 = planted.get_layer("b0_ffn1")
    kernel, bias = ffn1.get_weights()
    kernel[:, 7], bias[7] = kernel[:, 3], bias[3]  # neuron 7 becomes a copy of neuron 3
    ffn1.set_weights([kernel, bias])
    planted = reloaded(planted, folder, "planted")
    merged, report = merge_neurons(planted, "weights")
    ffn = report.layer("b0_ffn1")
    assert ffn.neurons_after == 63
    assert [(m["removed"], m["keeper"], m["exact"]) for m in ffn.merges] in ([(7, 3, True)], [(3, 7, True)])
    merged = reloaded(merged, folder, "planted_merged")
    x = data.x_test[:100]
    # float32 sums in another order: measured max |diff| 6e-8 on the 300 held-out softmax outputs
    np.testing.assert_allclose(merged.predict(x, verbose=0), planted.predict(x, verbose=0), atol=1e-5)
