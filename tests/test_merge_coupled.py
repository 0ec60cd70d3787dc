"""Merging through coupled channels (issue 15): residual Adds, Concatenate, DepthwiseConv and SeparableConv.

Each model is tiny, gets seeded weights scaled so its outputs are of order 1, has an exact scaled
copy planted in every producer of a group (and in the BatchNormalization statistics and depthwise
filters on the way), and is saved and reloaded before merging. A merge that removes only the
planted copies must leave the outputs unchanged within float32 rounding.
"""

import json

import numpy as np
import pytest

from tests.zoo import scaled_weights
from weightkit._common import run_cli
from weightkit.cli import cli

# Outputs of order 1; folding changes them by float32 rounding only (a few 1e-7 measured).
ATOL = 1e-5


def _plant(model, name, j, k, alpha, kernel_index=0):
    """Output channel j of ``name`` becomes alpha times channel k (kernel and bias)."""
    layer = model.get_layer(name)
    weights = layer.get_weights()
    weights[kernel_index][..., j] = alpha * weights[kernel_index][..., k]
    if len(weights) > kernel_index + 1:
        weights[-1][j] = alpha * weights[-1][k]
    layer.set_weights(weights)


def _plant_bn(model, name, j, k, alpha):
    """A BatchNormalization maps x_j = alpha x_k to y_j = alpha y_k."""
    layer = model.get_layer(name)
    gamma, beta, mean, variance = layer.get_weights()
    gamma[j], variance[j], mean[j], beta[j] = gamma[k], variance[k], alpha * mean[k], alpha * beta[k]
    layer.set_weights([gamma, beta, mean, variance])


def _reload(keras, model, tmp_path, name):
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return keras.saving.load_model(path), str(path)


def _residual(keras, rng):
    L = keras.layers
    inputs = keras.Input((5, 5, 3))
    x = L.ReLU(name="stem_relu")(L.BatchNormalization(name="stem_bn")(L.Conv2D(6, 3, padding="same", name="stem")(inputs)))
    y = L.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(x)
    y = L.BatchNormalization(name="bn2")(L.Conv2D(6, 3, padding="same", name="conv2")(y))
    shortcut = L.BatchNormalization(name="short_bn")(L.Conv2D(6, 1, name="shortcut")(x))
    z = L.ReLU(name="out_relu")(L.Add(name="add")([y, shortcut]))
    model = keras.Model(inputs, L.Dense(3, name="head")(L.GlobalAveragePooling2D(name="gap")(z)))
    scaled_weights(model, rng)
    for producer, bn in (("conv2", "bn2"), ("shortcut", "short_bn")):  # the copy in both branches
        _plant(model, producer, 4, 1, 2.0)
        _plant_bn(model, bn, 4, 1, 2.0)
    return model


def _concatenated(keras, rng):
    L = keras.layers
    inputs = keras.Input((4, 4, 3))
    a = L.Conv2D(5, 3, padding="same", activation="relu", name="left")(inputs)
    b = L.Conv2D(4, 3, padding="same", activation="relu", name="right")(inputs)
    x = L.BatchNormalization(name="cat_bn")(L.Concatenate(name="cat")([a, b]))
    x = L.Conv2D(3, 3, padding="same", activation="relu", name="after")(x)
    model = keras.Model(inputs, L.Dense(2, name="head")(L.Flatten(name="flat")(x)))
    scaled_weights(model, rng)
    _plant(model, "left", 0, 3, 1.5)
    _plant_bn(model, "cat_bn", 0, 3, 1.5)
    _plant(model, "right", 2, 1, 0.5)  # channel 5 + 2 of the concatenation
    _plant_bn(model, "cat_bn", 7, 6, 0.5)
    return model


def _depthwise(keras, rng):
    L = keras.layers
    inputs = keras.Input((5, 5, 3))
    x = L.Conv2D(6, 1, name="expand")(inputs)
    x = L.ReLU(name="dw_relu")(L.DepthwiseConv2D(3, padding="same", name="dw")(x))
    model = keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D(name="gap")(
        L.Conv2D(4, 1, name="project")(x))))
    scaled_weights(model, rng)
    _plant(model, "expand", 4, 1, 2.0)
    kernel, bias = model.get_layer("dw").get_weights()
    kernel[..., 4, 0], bias[4] = 0.5 * kernel[..., 1, 0], bias[1]  # y_4 = 2·0.5·(d_1 * x_1) + b_1 = y_1
    model.get_layer("dw").set_weights([kernel, bias])
    return model


def _separable(keras, rng):
    L = keras.layers
    inputs = keras.Input((5, 5, 3))
    x = L.Conv2D(6, 1, activation="relu", name="expand")(inputs)
    x = L.ReLU(name="sep_relu")(L.BatchNormalization(name="sep_bn")(
        L.SeparableConv2D(5, 3, padding="same", name="sep")(x)))
    model = keras.Model(inputs, L.Dense(2, name="head")(L.GlobalAveragePooling2D(name="gap")(
        L.Conv2D(4, 1, name="project")(x))))
    scaled_weights(model, rng)
    _plant(model, "expand", 4, 1, 2.0)  # read by the SeparableConv: its depthwise filters copied too
    depthwise, pointwise, bias = model.get_layer("sep").get_weights()
    depthwise[..., 4, 0] = depthwise[..., 1, 0]
    pointwise[..., 3], bias[3] = 3.0 * pointwise[..., 0], 3.0 * bias[0]  # the SeparableConv as producer
    model.get_layer("sep").set_weights([depthwise, pointwise, bias])
    _plant_bn(model, "sep_bn", 3, 0, 3.0)
    return model


MODELS = {"residual": (_residual, {"conv2": 5}), "concatenate": (_concatenated, {"left": 4, "right": 3}),
          "depthwise": (_depthwise, {"expand": 5}), "separable": (_separable, {"expand": 5, "sep": 4})}


@pytest.mark.parametrize("mode", ["weights", "data"])
@pytest.mark.parametrize("form", list(MODELS))
def test_planted_copies_merge_exactly_through_coupled_channels(keras, tmp_path, form, mode):
    from weightkit.compress.merge import merge_neurons

    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    build, expected = MODELS[form]
    model, _ = _reload(keras, build(keras, rng), tmp_path, form)
    x = rng.normal(size=(260,) + tuple(model.inputs[0].shape[1:])).astype("float32")
    if mode == "weights":
        merged, report = merge_neurons(model, metric="cosine", threshold=0.99999)
    else:
        merged, report = merge_neurons(model, "data", x[:200], max_error=1e-5, layers=list(expected))
    after = {layer.name: layer.neurons_after for layer in report.layers if layer.removed}
    if mode == "weights":
        assert after == expected
        assert all(m["exact"] for layer in report.layers for m in layer.merges)
    else:  # the planted copy, and channels a ReLU never opens on these inputs (dead: rebuilt as constants)
        assert set(after) == set(expected) and all(after[name] <= expected[name] for name in expected)
        assert all(item["r2"] >= 0.99999 for layer in report.layers for item in layer.removed)
    if form == "residual":
        (group,) = [layer for layer in report.layers if layer.producers]
        assert group.producers == ["conv2", "shortcut"] and set(group.members) >= {"bn2", "short_bn", "head"}
        assert merged.get_layer("shortcut").filters == merged.get_layer("conv2").filters == group.neurons_after
    reloaded, _ = _reload(keras, merged, tmp_path, f"{form}_merged")
    np.testing.assert_allclose(reloaded.predict(x[200:], verbose=0), model.predict(x[200:], verbose=0), atol=ATOL,
                               rtol=0)


def test_differing_scale_factors_are_reported_and_weights_stay_close(keras, tmp_path):
    from weightkit.compress.merge import merge_neurons

    rng = np.random.default_rng(1)
    model = _residual(keras, rng)
    _plant(model, "shortcut", 4, 1, 3.0)  # the branches now disagree: 2 in conv2, 3 in the shortcut
    _plant_bn(model, "short_bn", 4, 1, 3.0)
    model, _ = _reload(keras, model, tmp_path, "disagree")
    _, report = merge_neurons(model, metric="cosine", threshold=0.99999, layers=["conv2"])
    (group,) = report.layers
    assert group.neurons_after == 5 and not group.merges[0]["exact"]
    assert group.notes == [("approximate: the producers' scale factors differ: the merge is approximate "
                            "(use --mode data)")]


def test_ratio_counts_a_group_once_and_the_cli_lists_it(keras, tmp_path, capsys):
    rng = np.random.default_rng(2)
    _, path = _reload(keras, _residual(keras, rng), tmp_path, "ratio")
    out = tmp_path / "merged.keras"
    status = run_cli(cli, ["merge", path, "-o", str(out), "--ratio", "0.5"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    document = json.loads((tmp_path / "merged.json").read_text())
    (group,) = [layer for layer in document["layers"] if "group" in layer]
    assert group["group"]["producers"] == ["conv2", "shortcut"] and group["requested"] == 3
    assert "group conv2: 6 → " in captured.out and "producers conv2, shortcut" in captured.out


def test_nothing_mergeable_exits_2_without_writing(keras, tmp_path, capsys):
    L = keras.layers
    model = keras.Sequential([keras.Input((4, 3)), L.SimpleRNN(3, name="rnn"), L.Dense(2, name="head")])
    _, path = _reload(keras, model, tmp_path, "rnn")
    out = tmp_path / "merged.keras"
    status = run_cli(cli, ["merge", path, "-o", str(out)])
    captured = capsys.readouterr()
    assert status == 2 and not out.exists() and not (tmp_path / "merged.json").exists()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "nothing can be merged, so no copy was written" in lines[0]
    assert "Traceback" not in captured.err


def test_group_fit_removes_the_channel_rebuilt_at_every_tensor():
    from weightkit.compress.merge.fitting.group_fit import plan_group_fit

    rng = np.random.default_rng(3)
    units = []
    for scale in (1.0, 2.0):  # two tensors reading the group: channel 3 = a0 - a1 at both
        a = rng.normal(size=(300, 4)) * scale
        a[:, 3] = a[:, 0] - a[:, 1]
        units.append((a, rng.normal(size=(4, 2))))
    plan = plan_group_fit(units, count=1)
    assert plan.remove.tolist() == [3] and plan.error < 1e-6
    for beta in plan.beta:
        np.testing.assert_allclose(beta, [[1.0, -1.0, 0.0]], atol=1e-4)


def test_inverted_residual_block_without_biases_merges_by_data_and_loads(keras, tmp_path):
    """MobileNetV2's shape: a projection without bias is both a producer of the residual group and the
    consumer that a later group's fold gives a bias; both must be cut alike."""
    from weightkit.compress.merge import merge_neurons

    L = keras.layers
    rng = np.random.default_rng(4)
    inputs = keras.Input((5, 5, 3))
    x = L.BatchNormalization(name="stem_bn")(L.Conv2D(4, 1, use_bias=False, name="stem")(inputs))
    y = L.ReLU(name="expand_relu")(L.Conv2D(8, 1, use_bias=False, name="expand")(x))
    y = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(y)
    y = L.BatchNormalization(name="project_bn")(L.Conv2D(4, 1, use_bias=False, name="project")(y))
    z = L.GlobalAveragePooling2D(name="gap")(L.Add(name="add")([x, y]))
    model = keras.Model(inputs, L.Dense(2, name="head")(z))
    scaled_weights(model, rng)
    model, _ = _reload(keras, model, tmp_path, "inverted")
    x_in = rng.normal(size=(120, 5, 5, 3)).astype("float32")
    merged, report = merge_neurons(model, "data", x_in, ratio=0.5)
    assert {layer.name: layer.neurons_after for layer in report.layers} == {"stem": 2, "expand": 4}
    reloaded, _ = _reload(keras, merged, tmp_path, "inverted_merged")
    assert reloaded.get_layer("project").filters == 2 and reloaded.get_layer("project").use_bias


@pytest.mark.parametrize("mode", ["weights", "data"])
@pytest.mark.parametrize("join", ["Add", "Concatenate"])
def test_a_producer_called_at_two_places_merges_as_one_group(keras, tmp_path, join, mode):
    """A shared encoder on two inputs (a siamese pair) joined by Add or Concatenate: the copy leaves both calls."""
    from weightkit.compress.merge import merge_neurons

    L = keras.layers
    first, second = keras.Input((4,), name="first"), keras.Input((4,), name="second")
    encoder = L.Dense(5, activation="relu", name="encoder")
    joined = getattr(L, join)(name="join")([encoder(first), encoder(second)])
    model = keras.Model([first, second], L.Dense(2, name="head")(joined))
    rng = np.random.default_rng(5)
    scaled_weights(model, rng)
    _plant(model, "encoder", 3, 1, 2.0)
    model, _ = _reload(keras, model, tmp_path, join)
    x = [rng.normal(size=(64, 4)).astype("float32") for _ in range(2)]
    if mode == "weights":
        merged, report = merge_neurons(model, ratio=0.2)
    else:
        merged, report = merge_neurons(model, "data", x, ratio=0.2)
    (layer,) = report.layers
    assert (layer.name, layer.neurons_after, layer.consumers) == ("encoder", 4, ["head"])
    reloaded, _ = _reload(keras, merged, tmp_path, f"{join}_merged")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x)), keras.ops.convert_to_numpy(model(x)),
                               atol=ATOL, rtol=0)
