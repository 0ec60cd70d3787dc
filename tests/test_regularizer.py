"""DecorrelationRegularizer: penalty against a numpy reference, gradient, serialization, attaching."""

import json
import zipfile

import numpy as np
import pytest


def reference_penalty(rows, blocks=1):
    """mean_{i<j} r_ij² with np.corrcoef in float64; a constant row correlates 0 (as analysis)."""
    rows = np.asarray(rows, dtype=np.float64)
    values = []
    for block in np.split(rows, blocks):
        n = len(block)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.corrcoef(block)
        r = np.nan_to_num(r, nan=0.0)
        values.append(np.mean(r[np.triu_indices(n, 1)] ** 2))
    return float(np.mean(values))


def _layer(keras, kind):
    """A built layer of each supported family, with random weights."""
    layers = keras.layers
    specs = {
        "dense": (layers.Dense(7), (5,)),
        "conv1d": (layers.Conv1D(6, 3), (10, 4)),
        "conv2d": (layers.Conv2D(6, 3), (8, 8, 3)),
        "conv2d_transpose": (layers.Conv2DTranspose(5, 3), (6, 6, 4)),
        "conv3d_transpose": (layers.Conv3DTranspose(4, 2), (4, 4, 4, 3)),
        "depthwise": (layers.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 3)),
        "separable": (layers.SeparableConv2D(6, 3, depth_multiplier=2), (8, 8, 3)),
        "lstm": (layers.LSTM(5), (7, 3)),
        "gru": (layers.GRU(4), (7, 3)),
        "simple_rnn": (layers.SimpleRNN(6), (7, 3)),
    }
    layer, shape = specs[kind]
    inputs = keras.Input(shape)
    keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(0)
    for variable in layer.weights:
        variable.assign(rng.normal(size=tuple(variable.shape)).astype(np.float32))
    return layer


KINDS = ["dense", "conv1d", "conv2d", "conv2d_transpose", "conv3d_transpose", "depthwise", "separable",
         "lstm", "gru", "simple_rnn"]


@pytest.mark.parametrize("kind", KINDS)
def test_penalty_matches_numpy_on_the_rows_analysis_measures(keras, kind):
    from weightkit.analysis import layer_neuron_rows
    from weightkit.compress import DecorrelationRegularizer
    from weightkit.compress.decorrelate.kernels import regularizable_kernels

    layer = _layer(keras, kind)
    model = keras.Sequential([layer])
    entries = {e.name: e for e in layer_neuron_rows(layer)}
    for kernel in regularizable_kernels(model):
        rows = entries[kernel.name].rows if kernel.name in entries else None
        if kernel.blocks > 1 or kind == "simple_rnn":
            # RNN: the regularizer sees the input kernel only: each gate's rows without recurrent weights.
            features = kernel.variable.shape[0]
            gates = [e for e in layer_neuron_rows(layer)]
            rows = np.concatenate([g.rows[:, :features] for g in gates])
        expected = reference_penalty(rows, kernel.blocks)
        got = float(DecorrelationRegularizer(2.5, layout=kernel.layout, blocks=kernel.blocks)(kernel.variable))
        # float32 vs float64, and the 1e-6 epsilon relative to the *mean* row norm: a GRU gate row
        # of 3 inputs can have a centered norm 100x below the mean, so allow 2e-4.
        np.testing.assert_allclose(got, 2.5 * expected, rtol=2e-4, atol=1e-7)


@pytest.mark.parametrize("n, fan_in", [(2, 3), (6, 40), (50, 9), (64, 64)])
def test_penalty_matches_numpy_for_both_gram_orientations(n, fan_in):
    from weightkit.compress.decorrelate import decorrelation_penalty

    rows = np.random.default_rng(n).normal(size=(n, fan_in)).astype(np.float32)
    got = float(decorrelation_penalty(rows))
    np.testing.assert_allclose(got, reference_penalty(rows), rtol=2e-5, atol=1e-7)


def test_penalty_is_one_for_scaled_and_shifted_copies_and_zero_for_orthogonal_centered_rows():
    from weightkit.compress.decorrelate import decorrelation_penalty

    rng = np.random.default_rng(1)
    base = rng.normal(size=12)
    copies = np.stack([base, 3.0 * base + 1.0, 0.5 * base - 2.0, -base])
    assert float(decorrelation_penalty(copies)) == pytest.approx(1.0, abs=1e-5)
    # Orthonormal rows inside the subspace orthogonal to the all-ones vector: centered, uncorrelated.
    basis, _ = np.linalg.qr(np.column_stack([np.ones(12), rng.normal(size=(12, 6))]))
    orthogonal = basis[:, 1:].T * rng.uniform(0.5, 3.0, size=(6, 1))
    assert abs(orthogonal.mean(axis=1)).max() < 1e-12
    assert float(decorrelation_penalty(orthogonal.astype(np.float32))) < 1e-10


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_penalty_does_not_depend_on_the_scale_of_the_weights(scale):
    from weightkit.compress.decorrelate import decorrelation_penalty

    rows = np.random.default_rng(2).normal(size=(10, 20)).astype(np.float32)
    np.testing.assert_allclose(float(decorrelation_penalty(rows * scale)), reference_penalty(rows), rtol=1e-4)


def test_constant_and_zero_rows_give_finite_penalty_and_gradient(keras):
    import tensorflow as tf

    from weightkit.compress import DecorrelationRegularizer

    kernel = np.random.default_rng(3).normal(size=(8, 5)).astype(np.float32)
    kernel[:, 1] = 0.7  # a constant neuron
    kernel[:, 3] = 0.0  # a dead neuron
    variable = tf.Variable(kernel)
    with tf.GradientTape() as tape:
        penalty = DecorrelationRegularizer(1.0)(variable)
    gradient = tape.gradient(penalty, variable).numpy()
    assert np.isfinite(float(penalty)) and np.isfinite(gradient).all()
    np.testing.assert_allclose(float(penalty), reference_penalty(kernel.T), rtol=1e-4)
    everything_constant = tf.Variable(np.ones((4, 3), dtype=np.float32))
    with tf.GradientTape() as tape:
        penalty = DecorrelationRegularizer(1.0)(everything_constant)
    assert float(penalty) == 0.0
    assert np.isfinite(tape.gradient(penalty, everything_constant).numpy()).all()


@pytest.mark.parametrize("layout, shape", [("last", (6, 5)), ("last", (3, 3, 2, 4)), ("transpose", (2, 2, 4, 3)),
                                           ("depthwise", (3, 3, 2, 2))])
def test_gradient_matches_finite_differences(keras, layout, shape):
    import tensorflow as tf

    from weightkit.compress import DecorrelationRegularizer

    regularizer = DecorrelationRegularizer(1.0, layout=layout)
    kernel = np.random.default_rng(4).normal(size=shape)
    variable = tf.Variable(kernel.astype(np.float32))
    with tf.GradientTape() as tape:
        penalty = regularizer(variable)
    analytic = tape.gradient(penalty, variable).numpy().ravel()
    step = 1e-2  # central differences in float32: truncation error ~ step², rounding ~ 1e-7 / step
    checked = np.random.default_rng(5).choice(kernel.size, size=min(kernel.size, 24), replace=False)
    numeric = np.empty(len(checked))
    for slot, index in enumerate(checked):
        plus, minus = kernel.copy().ravel(), kernel.copy().ravel()
        plus[index] += step
        minus[index] -= step
        numeric[slot] = (float(regularizer(plus.reshape(shape).astype(np.float32)))
                          - float(regularizer(minus.reshape(shape).astype(np.float32)))) / (2 * step)
    np.testing.assert_allclose(analytic[checked], numeric, atol=2e-4, rtol=2e-2)


def test_config_round_trip_and_registered_name(keras):
    from weightkit.compress import DecorrelationRegularizer

    regularizer = DecorrelationRegularizer(0.3, layout="transpose", blocks=2, epsilon=1e-5)
    config = regularizer.get_config()
    assert config == {"strength": 0.3, "layout": "transpose", "blocks": 2, "epsilon": 1e-5}
    assert DecorrelationRegularizer.from_config(config).get_config() == config
    serialized = keras.regularizers.serialize(regularizer)
    assert serialized["registered_name"] == "weightkit>DecorrelationRegularizer"
    restored = keras.regularizers.get(serialized)
    assert isinstance(restored, DecorrelationRegularizer) and restored.get_config() == config
    assert keras.saving.get_registered_object("weightkit>DecorrelationRegularizer") is DecorrelationRegularizer


@pytest.mark.parametrize("kwargs, message", [
    ({"strength": -1.0}, "Invalid value for argument `strength`. Expected a finite number >= 0. Received: strength=-1.0"),
    ({"layout": "rows"}, "Invalid value for argument `layout`. Expected one of ['last', 'transpose', 'depthwise']. "
                         "Received: layout='rows'"),
    ({"blocks": 0}, "Invalid value for argument `blocks`. Expected an integer >= 1. Received: blocks=0"),
])
def test_invalid_arguments_are_refused_with_the_allowed_values(kwargs, message):
    from weightkit.compress import DecorrelationRegularizer

    with pytest.raises(ValueError) as error:
        DecorrelationRegularizer(**kwargs)
    assert str(error.value) == message


def _small_model(keras, regularizer=None):
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(8, activation="relu", kernel_regularizer=regularizer, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(hidden))


def test_model_saved_with_the_regularizer_reloads_in_safe_mode(keras, tmp_path):
    from weightkit.analysis import load_model
    from weightkit.compress import DecorrelationRegularizer

    model = _small_model(keras, DecorrelationRegularizer(0.7))
    path = tmp_path / "with.keras"
    model.save(path)
    loaded = load_model(str(path)).model  # safe mode: the registered class is accepted
    regularizer = loaded.get_layer("hidden").kernel.regularizer
    assert isinstance(regularizer, DecorrelationRegularizer) and regularizer.strength == 0.7
    np.testing.assert_allclose(float(sum(loaded.losses)), float(sum(model.losses)), rtol=1e-6)


def test_attach_adds_the_loss_keeps_weight_decay_and_detach_saves_a_plain_model(keras, tmp_path):
    from weightkit.analysis import load_model
    from weightkit.compress import DecorrelationRegularizer, attach_decorrelation, detach_decorrelation
    from weightkit.compress.decorrelate import CombinedRegularizer

    model = _small_model(keras, keras.regularizers.L2(1e-3))
    decay = float(sum(model.losses))
    kernels = attach_decorrelation(model, 2.0)  # default: hidden layers only, not the output
    assert [k.name for k in kernels] == ["hidden"]
    attached = model.get_layer("hidden").kernel.regularizer
    assert isinstance(attached, CombinedRegularizer)
    rows = keras.ops.convert_to_numpy(model.get_layer("hidden").kernel).T
    np.testing.assert_allclose(float(sum(model.losses)), decay + 2.0 * reference_penalty(rows), rtol=1e-5)
    kept = tmp_path / "kept.keras"
    model.save(kept)
    reloaded = load_model(str(kept)).model
    parts = reloaded.get_layer("hidden").kernel.regularizer.regularizers
    assert [type(p).__name__ for p in parts] == ["L2", "DecorrelationRegularizer"]
    detach_decorrelation(kernels)
    assert float(sum(model.losses)) == pytest.approx(decay)
    plain = tmp_path / "plain.keras"
    model.save(plain)
    with zipfile.ZipFile(plain) as archive:
        assert "weightkit" not in json.dumps(json.loads(archive.read("config.json")))
    assert isinstance(load_model(str(plain)).model.get_layer("hidden").kernel.regularizer, keras.regularizers.L2)
    assert not isinstance(model.get_layer("hidden").kernel.regularizer, DecorrelationRegularizer)


def test_attach_refuses_unknown_layers_with_the_available_ones(keras):
    from weightkit.analysis.errors import WeightkitError
    from weightkit.compress import attach_decorrelation

    with pytest.raises(WeightkitError) as error:
        attach_decorrelation(_small_model(keras), 1.0, layers=["hiden"])
    assert str(error.value) == "--layers: no regularizable layer named 'hiden'; available: hidden, out."
