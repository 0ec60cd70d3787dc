"""A layer called at several places (issue 29, item 9): what can merge merges, the shared layer stays whole.

One Dense (``shared``) reads a hidden layer's output on one call and a second model input on
another. A planted copy in the layer feeding it (``pa``) cannot be folded into ``shared``'s input rows
without changing its other call, so ``pa`` keeps its units with the reason; a planted copy further
up (``h``) merges exactly.
"""

import numpy as np

from tests.zoo import reloaded, scaled_weights
from weightkit.compress.merge import merge_redundant

# Outputs of order 1; folding changes them by float32 rounding only.
ATOL = 1e-5


def _plant(model, name, j, k, alpha):
    kernel, bias = model.get_layer(name).get_weights()
    kernel[:, j], bias[j] = alpha * kernel[:, k], alpha * bias[k]
    model.get_layer(name).set_weights([kernel, bias])


def _shared_model(keras, tmp_path):
    L = keras.layers
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    h = L.Dense(8, activation="relu", name="h")(a)
    shared = L.Dense(5, name="shared")
    x, y = shared(L.Dense(6, name="pa")(h)), shared(b)
    model = keras.Model([a, b], L.Dense(3, name="out")(L.Concatenate(name="cat")([x, y])))
    scaled_weights(model, np.random.default_rng(0))
    _plant(model, "h", 7, 2, 2.0)
    _plant(model, "pa", 4, 2, 3.0)
    return reloaded(model, tmp_path, "shared_twice")


def test_a_layer_called_on_two_inputs_stays_whole_and_the_rest_merges(keras, tmp_path):
    model = _shared_model(keras, tmp_path)
    merged, report = merge_redundant(model, threshold=0.999)
    by_name = {layer.name: layer for layer in report.layers}
    assert by_name["h"].removed == 1
    assert "pa" not in by_name or by_name["pa"].removed == 0
    reasons = {skip.name: skip.reason for skip in report.skipped}
    assert reasons["pa"] == ("its output feeds shared, a layer shared with other inputs (merging would change its "
                             "other calls)")
    assert merged.get_layer("shared").get_weights()[0].shape == (6, 5)
    merged = reloaded(merged, tmp_path, "merged")
    rng = np.random.default_rng(1)
    x = [rng.normal(size=(16, 6)).astype("float32") for _ in range(2)]
    np.testing.assert_allclose(merged.predict(x, verbose=0), model.predict(x, verbose=0), atol=ATOL)
