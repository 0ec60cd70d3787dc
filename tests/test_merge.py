"""merge_redundant on real Keras models: exactness per handled pattern, refusals with reasons, --ratio counts."""

import numpy as np
import pytest

# Float32 outputs of the original and the merged model differ by rounding only: a few 1e-7.
ATOL = 1e-5


def _plant(layer, copies, rng=None):
    """Make output channel j an exact positive multiple of channel k: copies = [(j, k, alpha), ...]."""
    weights = layer.get_weights()
    kernel = weights[0]
    bias = weights[1] if len(weights) > 1 else None
    for j, k, alpha in copies:
        kernel[..., j] = alpha * kernel[..., k]
        if bias is not None:
            bias[j] = alpha * bias[k]
    layer.set_weights([kernel] + ([bias] if bias is not None else []))


def _randomize_bias(model, rng):
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0, 0.3, bias.shape).astype("float32")])
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n),
                               rng.uniform(0.5, 2, n)])


def _dense_dense(keras):
    inputs = keras.Input((12,))
    x = keras.layers.Dense(10, activation="relu", name="producer")(inputs)
    outputs = keras.layers.Dense(4, name="head")(x)
    return keras.Model(inputs, outputs)


def _sequential_leaky(keras):
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(10, activation="leaky_relu", name="producer"),
                              keras.layers.Dense(4, name="head")])
    return model


def _conv_conv(keras):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="producer")(inputs)
    x = keras.layers.Conv2D(5, 3, padding="valid", name="consumer")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def _conv_flatten_dense(keras):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="producer")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def _conv_gap_dense(keras):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="producer")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def _conv_gmp_dense(keras):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="producer")(inputs)
    x = keras.layers.GlobalMaxPooling2D(name="gmp")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def _conv1d_conv1d(keras):
    inputs = keras.Input((10, 3))
    x = keras.layers.Conv1D(8, 3, padding="causal", activation="relu", name="producer")(inputs)
    x = keras.layers.Conv1D(4, 2, name="consumer")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


def _bn_after_activation(keras):
    inputs = keras.Input((12,))
    x = keras.layers.Dense(10, activation="relu", name="producer")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(4, use_bias=False, name="head")(x))


def _steps_between(keras):
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", name="producer")(inputs)
    x = keras.layers.Activation("relu", name="act")(x)
    x = keras.layers.ZeroPadding2D(1, name="pad")(x)
    x = keras.layers.AveragePooling2D(2, name="avg")(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(0.3, name="drop2")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


PATTERNS = {
    "dense-dense": _dense_dense,
    "sequential-leaky": _sequential_leaky,
    "conv-conv": _conv_conv,
    "conv-flatten-dense": _conv_flatten_dense,
    "conv-gap-dense": _conv_gap_dense,
    "conv-gmp-dense": _conv_gmp_dense,
    "conv1d-conv1d": _conv1d_conv1d,
    "bn-after-activation": _bn_after_activation,
    "activation-pad-avgpool-dropout-flatten": _steps_between,
}


def _outputs(model, x):
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_exact_scaled_copies_merge_to_identical_smaller_model(keras, pattern):
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    model = PATTERNS[pattern](keras)
    _randomize_bias(model, rng)
    _plant(model.get_layer("producer"), [(1, 4, 2.5), (6, 4, 0.4), (7, 2, 1.7)])
    from weightkit.compress.merge import merge_redundant

    before = [w.copy() for w in model.get_weights()]
    merged, report = merge_redundant(model, metric="cosine", threshold=0.99999, layers=["producer"])
    layer = report.layers[0]
    n = model.get_layer("producer").get_weights()[0].shape[-1]
    assert (layer.neurons_before, layer.neurons_after) == (n, n - 3)
    assert all(m["exact"] for m in layer.merges) and len(layer.merges) == 3
    removed = {m["removed"] for m in layer.merges}
    assert len(removed & {1, 4, 6}) == 2 and len(removed & {2, 7}) == 1
    assert merged.get_layer("producer").count_params() < model.get_layer("producer").count_params()
    assert merged.count_params() < model.count_params()
    assert [l.name for l in merged.layers] == [l.name for l in model.layers]
    x = rng.normal(size=(64,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    np.testing.assert_allclose(_outputs(merged, x), _outputs(model, x), atol=ATOL)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)  # the input model is untouched


def test_batchnorm_before_activation_is_folded_into_the_rows(keras):
    rng = np.random.default_rng(1)
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="producer")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="consumer")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    _randomize_bias(model, rng)
    # Same filter, same statistics, γ and β scaled by 3: the normalized outputs are 3× apart.
    kernel = model.get_layer("producer").get_weights()[0]
    kernel[..., 5] = kernel[..., 2]
    model.get_layer("producer").set_weights([kernel])
    gamma, beta, mean, variance = model.get_layer("bn").get_weights()
    gamma[5], beta[5], mean[5], variance[5] = 3 * gamma[2], 3 * beta[2], mean[2], variance[2]
    model.get_layer("bn").set_weights([gamma, beta, mean, variance])
    from weightkit.compress.merge import merge_redundant

    merged, report = merge_redundant(model, metric="cosine", threshold=0.99999, layers=["producer"])
    assert report.layers[0].neurons_after == 7
    assert report.layers[0].merges[0]["alpha"] in (pytest.approx(3.0), pytest.approx(1 / 3))
    assert merged.get_layer("bn").count_params() == 4 * 7
    x = rng.normal(size=(32, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(_outputs(merged, x), _outputs(model, x), atol=ATOL)


def _sigmoid_model(keras, alpha):
    keras.utils.set_random_seed(2)
    inputs = keras.Input((12,))
    x = keras.layers.Dense(6, activation="sigmoid", name="producer")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    _plant(model.get_layer("producer"), [(3, 1, alpha)])
    return model


def test_sigmoid_scaled_copy_is_left_alone_with_reason(keras):
    from weightkit.compress.merge import merge_redundant

    merged, report = merge_redundant(_sigmoid_model(keras, 2.0), metric="cosine", threshold=0.99999,
                                     layers=["producer"])
    layer = report.layers[0]
    assert layer.neurons_after == 6 and layer.rule == "twin"
    assert layer.left_alone == [{"neuron": 3, "keeper": 1, "reason":
                                 "not twins (α = 2, ‖w_j − w_k‖ / ‖w_k‖ = 1 > 0.05) and the activation is not "
                                 "positively homogeneous"}]


def test_sigmoid_exact_copy_is_merged(keras):
    from weightkit.compress.merge import merge_redundant

    model = _sigmoid_model(keras, 1.0)
    merged, report = merge_redundant(model, metric="mad", threshold=0.001, layers=["producer"])
    assert report.layers[0].neurons_after == 5
    x = np.random.default_rng(3).normal(size=(32, 12)).astype("float32")
    np.testing.assert_allclose(_outputs(merged, x), _outputs(model, x), atol=ATOL)


def test_residual_block_merges_as_one_group_and_output_layer_is_left_alone(keras):
    inputs = keras.Input((8,))
    x = keras.layers.Dense(8, activation="relu", name="trunk")(inputs)
    y = keras.layers.Dense(8, activation="relu", name="branch")(x)
    z = keras.layers.Add(name="add")([x, y])
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(z))
    from weightkit.compress.merge import merge_redundant
    from weightkit.compress.merge.planning.groups import plan_groups

    plan = plan_groups(model)
    assert [(g.producers, g.n) for g in plan.groups] == [(["trunk", "branch"], 8)]
    assert plan.blocked["head"] == "its output is (on the way to) a model output"
    merged, report = merge_redundant(model, ratio=0.5)
    (group,) = report.layers
    assert group.producers == ["trunk", "branch"] and group.consumers == ["branch", "head"]
    assert group.requested == 4 and group.neurons_before == 8  # the group counted once
    assert 4 <= group.neurons_after < 8  # pairs need α > 0 in both producers (ReLU)
    assert merged.get_layer("trunk").units == merged.get_layer("branch").units == group.neurons_after
    assert {s.name: s.reason for s in report.skipped} == {"head": "its output is (on the way to) a model output"}


def test_several_consumers_through_one_tensor_are_all_folded(keras):
    rng = np.random.default_rng(4)
    keras.utils.set_random_seed(4)
    inputs = keras.Input((12,))
    x = keras.layers.Dense(10, activation="relu", name="producer")(inputs)
    a = keras.layers.Dense(3, name="left")(x)
    b = keras.layers.Dense(3, name="right")(x)
    model = keras.Model(inputs, keras.layers.Concatenate(name="cat")([a, b]))
    _plant(model.get_layer("producer"), [(0, 5, 2.0)])
    from weightkit.compress.merge import merge_redundant

    merged, report = merge_redundant(model, metric="cosine", threshold=0.99999, layers=["producer"])
    assert report.layers[0].consumers == ["left", "right"] and report.layers[0].neurons_after == 9
    x_in = rng.normal(size=(16, 12)).astype("float32")
    np.testing.assert_allclose(_outputs(merged, x_in), _outputs(model, x_in), atol=ATOL)


@pytest.mark.parametrize("ratio", [0.3, 0.5])
def test_ratio_removes_exactly_the_requested_number(trained_mlp, ratio):
    from weightkit.compress.merge import merge_redundant

    model, _ = trained_mlp
    merged, report = merge_redundant(model, ratio=ratio)
    expected = 64 - int(round(ratio * 64))
    assert [(l.name, l.neurons_after) for l in report.layers] == [("hidden1", expected), ("hidden2", expected)]
    assert merged.get_layer("hidden1").units == expected and merged.get_layer("hidden2").units == expected
    assert merged.get_layer("classes").kernel.shape == (expected, 10)
    assert report.params_after == merged.count_params() < report.params_before


def test_merging_trained_mlp_keeps_accuracy_close(trained_mlp, digits):
    from weightkit.compress.merge import merge_redundant
    from weightkit.compress.merge.reporting.report import compare_models

    model, accuracy = trained_mlp
    # A fixed budget: how many r >= 0.9 groups a 15-epoch training leaves varies from run to run
    # (TensorFlow's CPU training is not bit-reproducible), one eighth of each layer does not.
    merged, report = merge_redundant(model, ratio=0.125)
    evaluation = compare_models(model, merged, digits.x_test, digits.y_test)
    assert evaluation["accuracy_before"] == pytest.approx(accuracy, abs=1e-6)
    assert report.removed == 2 * 8
    assert evaluation["agreement"] >= 0.95  # measured 0.98 to 1.00 over three training seeds


def test_pruning_relation_and_unknown_layer(keras, trained_mlp):
    from weightkit.analysis.errors import WeightkitError
    from weightkit.compress.merge.by_weights import apply_relations, merge_redundant
    from weightkit.compress.merge.applying.math import Relation

    model, _ = trained_mlp
    pruned = apply_relations(model, {"hidden1": Relation.prune(64, [0, 5, 9])})
    assert pruned.get_layer("hidden1").units == 61
    with pytest.raises(WeightkitError) as error:
        merge_redundant(model, layers=["nope"])
    assert str(error.value) == ("--layers: no analyzable layer named 'nope'; available: classes, hidden1, "
                                "hidden2.")
    with pytest.raises(WeightkitError) as error:
        merge_redundant(model, ratio=1.5)
    assert str(error.value) == ("--ratio 1.5: must be between 0 and 1 (the share of each layer's neurons to "
                                "remove), e.g. 0.5.")
