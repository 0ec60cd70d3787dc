"""A zoo of small Keras models in every graph form weightkit must read, each saved and reloaded.

A model built in memory is not what a user has: a Sequential loaded from a file carries extra
inbound nodes on every layer (see /work/shared/NOTES.md). Every builder here therefore builds a
model from code with seeded weights, saves it in the caller's folder and returns the RELOADED
model. :func:`load_zoo` caches the reloaded models per process so test modules share them
(treat them as read-only; ``fresh=True`` reloads a private copy from the saved file).

``ZOO`` holds the forms other modules test against; ``EXTRA_ZOO`` holds call conventions the
graph adapter must also replay (keyword tensors, masks, layers returning states, raw ops).
"""

import os

import numpy as np

from weightkit.analysis._tf import import_keras

__all__ = ["EXTRA_ZOO", "ZOO", "load_zoo", "reloaded", "scaled_weights", "sequence_task", "zoo_inputs", "zoo_path"]

keras = import_keras()
L = keras.layers

VOCAB = 20  # vocabulary of the integer-input forms


def _finish(model, directory, name, ext=".keras", seed=0):
    """Give ``model`` seeded weights, save it as ``directory/name+ext`` and return the reloaded copy."""
    rng = np.random.default_rng(seed)
    for layer in _leaf_layers(model):
        values = [rng.normal(0.0, 0.4, w.shape).astype(w.dtype) for w in layer.get_weights()]
        if isinstance(layer, L.BatchNormalization):  # moving variance must stay positive
            index = [w.path for w in layer.weights].index(layer.moving_variance.path)
            values[index] = rng.uniform(0.5, 1.5, values[index].shape).astype("float32")
        layer.set_weights(values)
    return reloaded(model, directory, name, ext)


def reloaded(model, directory, name, ext=".keras"):
    """Save ``model`` as ``directory/name+ext`` and return the copy loaded back from that file."""
    path = os.path.join(str(directory), name + ext)
    model.save(path)
    return keras.saving.load_model(path)


def scaled_weights(model, rng):
    """Give every top-level layer of ``model`` normal weights scaled by 1/sqrt(fan-in), drawn from ``rng``.

    Fan-in is the product of a weight's leading dimensions (1 for a vector). A BatchNormalization gets
    gamma in [0.5, 2), normal beta and moving mean (σ 0.5) and a moving variance in [0.5, 2).
    """
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.5, n), rng.normal(0, 0.5, n),
                               rng.uniform(0.5, 2, n)])
        elif layer.weights:
            layer.set_weights([(rng.normal(size=w.shape) / np.sqrt(int(np.prod(w.shape[:-1])) if w.ndim > 1 else 1))
                               .astype("float32") for w in layer.get_weights()])


def sequence_task(steps, n=400, n_train=300, seed=0):
    """A synthetic sequence classification task: ``Dataset`` of ``(n, steps, 2)`` float32 series.

    Class 1 when the first feature's second half sums above its first half: a recurrent layer
    learns it in a few epochs, so agreement with Keras after quantization means something.
    """
    from weightkit.analysis.data.datasets import Dataset

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, 2)).astype("float32")
    y = (x[:, steps // 2:, 0].sum(1) > x[:, :steps // 2, 0].sum(1)).astype("int64")
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], "synthetic sequences", "classification")


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _mlp_layers():
    return [L.Dense(8, activation="relu", name="hidden1"), L.Dense(6, activation="tanh", name="hidden2"),
            L.Dense(3, activation="softmax", name="probs")]


def sequential_mlp(directory):
    """Sequential 5-8-6-3 MLP saved as .keras: reloaded, its layers carry [3, 2, 1] inbound nodes."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,), name="features")] + _mlp_layers(), name="sequential_mlp")
    return _finish(model, directory, "sequential_mlp")


def sequential_mlp_h5(directory):
    """The same MLP saved in the legacy .h5 format."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,), name="features")] + _mlp_layers(), name="sequential_mlp_h5")
    return _finish(model, directory, "sequential_mlp_h5", ext=".h5")


def functional_mlp(directory):
    """Functional 5-8-6-3 MLP."""
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((5,), name="features")
    for layer in _mlp_layers():
        x = layer(x)
    return _finish(keras.Model(inp, x, name="functional_mlp"), directory, "functional_mlp")


def nested_sequential(directory):
    """A Sequential ``encoder`` (built without an Input) between two Dense layers of a functional model."""
    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([L.Dense(8, activation="relu", name="enc1"), L.Dense(4, activation="relu",
                                                                                    name="enc2")], name="encoder")
    inp = keras.Input((5,), name="features")
    x = L.Dense(6, activation="relu", name="pre")(inp)
    out = L.Dense(2, name="head")(encoder(x))
    return _finish(keras.Model(inp, out, name="nested_sequential"), directory, "nested_sequential")


def nested_functional(directory):
    """Two levels: a functional ``inner`` inside a functional ``block`` inside the model."""
    keras.utils.set_random_seed(0)
    a = keras.Input((6,), name="inner_in")
    inner = keras.Model(a, L.Dense(4, activation="relu", name="inner_dense")(a), name="inner")
    b = keras.Input((5,), name="block_in")
    y = L.Dense(6, activation="relu", name="block_dense")(b)
    block = keras.Model(b, L.Dense(3, name="block_out")(inner(y)), name="block")
    inp = keras.Input((5,), name="features")
    out = L.Dense(2, name="head")(block(inp))
    return _finish(keras.Model(inp, out, name="nested_functional"), directory, "nested_functional")


def shared_dense(directory):
    """One Dense applied to two different tensors of the same width, the results added."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,), name="features")
    left = L.Dense(4, activation="relu", name="left")(inp)
    right = L.Dense(4, activation="tanh", name="right")(inp)
    shared = L.Dense(3, name="shared")
    out = L.Add(name="sum")([shared(left), shared(right)])
    return _finish(keras.Model(inp, out, name="shared_dense"), directory, "shared_dense")


def two_outputs(directory):
    """A trunk with two named Dense heads (``class_head`` softmax, ``value_head`` linear)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,), name="features")
    trunk = L.Dense(8, activation="relu", name="trunk")(inp)
    cls = L.Dense(3, activation="softmax", name="class_head")(trunk)
    value = L.Dense(1, name="value_head")(trunk)
    return _finish(keras.Model(inp, [cls, value], name="two_outputs"), directory, "two_outputs")


def two_inputs(directory):
    """Two inputs of different widths, each through a Dense, concatenated into one head."""
    keras.utils.set_random_seed(0)
    a = keras.Input((5,), name="numbers")
    b = keras.Input((3,), name="extra")
    x = L.Concatenate(name="join")([L.Dense(4, activation="relu", name="a_dense")(a),
                                    L.Dense(2, activation="relu", name="b_dense")(b)])
    out = L.Dense(2, name="head")(x)
    return _finish(keras.Model([a, b], out, name="two_inputs"), directory, "two_inputs")


def residual_cnn(directory):
    """8x8x1 images: Conv2D + BatchNormalization, an Add skip block, GlobalAveragePooling2D, Dense."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    x = L.Conv2D(4, 3, padding="same", name="stem")(inp)
    x = L.Activation("relu", name="stem_relu")(L.BatchNormalization(name="stem_bn")(x))
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="block_conv1")(x)
    y = L.BatchNormalization(name="block_bn")(L.Conv2D(4, 3, padding="same", name="block_conv2")(y))
    x = L.Activation("relu", name="block_relu")(L.Add(name="skip")([x, y]))
    x = L.GlobalAveragePooling2D(name="pool")(L.MaxPooling2D(name="downsample")(x))
    out = L.Dense(3, activation="softmax", name="probs")(x)
    return _finish(keras.Model(inp, out, name="residual_cnn"), directory, "residual_cnn")


def concat_branches(directory):
    """Two Dense branches of the same input concatenated, then a Dense head."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,), name="features")
    x = L.Concatenate(name="join")([L.Dense(4, activation="relu", name="branch_a")(inp),
                                    L.Dense(3, activation="relu", name="branch_b")(inp)])
    out = L.Dense(2, name="head")(x)
    return _finish(keras.Model(inp, out, name="concat_branches"), directory, "concat_branches")


def embedding_lstm(directory):
    """int32 token ids (length 7) -> Embedding -> LSTM -> Dense, as a Sequential."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((7,), dtype="int32", name="tokens"), L.Embedding(VOCAB, 4, name="embed"),
                              L.LSTM(5, name="lstm"), L.Dense(2, activation="softmax", name="probs")],
                             name="embedding_lstm")
    return _finish(model, directory, "embedding_lstm")


def gru_sequences(directory):
    """(6 steps, 3 features) -> GRU(return_sequences) -> TimeDistributed(Dense)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 3), name="series"), L.GRU(5, return_sequences=True, name="gru"),
                              L.TimeDistributed(L.Dense(2, name="step_dense"), name="per_step")],
                             name="gru_sequences")
    return _finish(model, directory, "gru_sequences")


def simple_rnn(directory):
    """(6 steps, 3 features) -> SimpleRNN -> Dense."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((6, 3), name="series"), L.SimpleRNN(5, name="rnn"),
                              L.Dense(2, name="head")], name="simple_rnn")
    return _finish(model, directory, "simple_rnn")


def bidirectional_lstm(directory):
    """(6 steps, 3 features) -> Bidirectional(LSTM) -> Dense, functional."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 3), name="series")
    x = L.Bidirectional(L.LSTM(4, name="lstm"), name="bilstm")(inp)
    out = L.Dense(2, name="head")(x)
    return _finish(keras.Model(inp, out, name="bidirectional_lstm"), directory, "bidirectional_lstm")


def segmentation_cnn(directory):
    """(8, 8, 2) images -> same-padding Conv2D stack -> per-pixel sigmoid of shape (8, 8, 1)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 2), name="image"),
                              L.Conv2D(4, 3, padding="same", activation="relu", name="conv1"),
                              L.BatchNormalization(name="bn1"),
                              L.Conv2D(4, 3, padding="same", activation="relu", name="conv2"),
                              L.Conv2D(1, 1, padding="same", activation="sigmoid", name="mask")],
                             name="segmentation_cnn")
    return _finish(model, directory, "segmentation_cnn")


def attention(directory):
    """MultiHeadAttention called with keyword tensors (query=, value=), a residual Add and LayerNorm."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((5, 4), name="sequence")
    ctx = keras.Input((3, 4), name="context")
    att = L.MultiHeadAttention(num_heads=2, key_dim=2, name="mha")(query=inp, value=ctx)
    x = L.LayerNormalization(name="norm")(L.Add(name="residual")([inp, att]))
    out = L.Dense(2, name="head")(L.GlobalAveragePooling1D(name="pool")(x))
    return _finish(keras.Model([inp, ctx], out, name="attention"), directory, "attention")


def masked_lstm(directory):
    """Embedding(mask_zero=True) -> LSTM: the mask flows between layers without being a node input."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((7,), dtype="int32", name="tokens")
    x = L.LSTM(5, name="lstm")(L.Embedding(VOCAB, 4, mask_zero=True, name="embed")(inp))
    out = L.Dense(2, name="head")(x)
    return _finish(keras.Model(inp, out, name="masked_lstm"), directory, "masked_lstm")


def lstm_states(directory):
    """LSTM(return_state=True) returns three tensors: its sequence output goes out, its states on to a head."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 3), name="series")
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True, name="lstm")(inp)
    head = L.Dense(2, name="head")(L.Concatenate(name="states")([h, c]))
    return _finish(keras.Model(inp, {"sequence": seq, "head": head}, name="lstm_states"), directory, "lstm_states")


def nested_training(directory):
    """A nested Sequential with BatchNormalization called with ``training=True`` (batch statistics)."""
    keras.utils.set_random_seed(0)
    block = keras.Sequential([keras.Input((4,)), L.Dense(4, name="block_dense"), L.BatchNormalization(name="block_bn")],
                             name="block")
    inp = keras.Input((5,), name="features")
    x = block(L.Dense(4, name="pre")(inp), training=True)
    out = L.Dense(2, name="head")(x)
    return _finish(keras.Model(inp, out, name="nested_training"), directory, "nested_training")


def dict_inputs(directory):
    """Inputs given as a dict ``{"b": ..., "a": ...}``, a shared nested Sequential applied to both."""
    keras.utils.set_random_seed(0)
    tower = keras.Sequential([keras.Input((3,)), L.Dense(4, activation="relu", name="tower_dense")], name="tower")
    inputs = {"b": keras.Input((3,), name="b"), "a": keras.Input((3,), name="a")}
    x = L.Concatenate(name="join")([tower(inputs["a"]), tower(inputs["b"])])
    out = L.Dense(2, name="head")(x)
    return _finish(keras.Model(inputs, out, name="dict_inputs"), directory, "dict_inputs")


ZOO = {f.__name__: f for f in (
    sequential_mlp, sequential_mlp_h5, functional_mlp, nested_sequential, nested_functional, shared_dense,
    two_outputs, two_inputs, residual_cnn, concat_branches, embedding_lstm, gru_sequences, simple_rnn,
    bidirectional_lstm, segmentation_cnn)}
EXTRA_ZOO = {f.__name__: f for f in (attention, masked_lstm, lstm_states, nested_training, dict_inputs)}

_CACHE = {}  # name -> (saved path, reloaded model), shared by every test module of a process


def zoo_path(name, directory):
    """Path of the saved file of form ``name``, building it in ``directory`` on first use."""
    if name not in _CACHE:
        builders = {**ZOO, **EXTRA_ZOO}
        if name not in builders:
            raise KeyError(f"Unknown zoo form {name!r}. Expected one of {sorted(builders)}.")
        before = set(os.listdir(str(directory)))
        model = builders[name](directory)
        (saved,) = set(os.listdir(str(directory))) - before
        _CACHE[name] = (os.path.join(str(directory), saved), model)
    return _CACHE[name][0]


def load_zoo(name, directory, fresh=False):
    """The reloaded model of form ``name``, built and saved in ``directory`` once per process.

    Parameters
    ----------
    name : str
        A key of ``ZOO`` or ``EXTRA_ZOO``.
    directory : str or path-like
        Where to save the model the first time (e.g. ``tmp_path_factory.mktemp("zoo")``).
    fresh : bool, default=False
        Load a private copy from the saved file instead of the shared cached model: use it for
        tests that change the model.

    Returns
    -------
    keras.Model
    """
    path = zoo_path(name, directory)
    return keras.saving.load_model(path) if fresh else _CACHE[name][1]


def zoo_inputs(model, n=8, seed=0):
    """Valid inputs for ``model``: normal floats, or integers in ``[0, VOCAB)`` for integer inputs.

    Parameters
    ----------
    model : keras.Model
    n : int, default=8
        Batch size.
    seed : int, default=0

    Returns
    -------
    ndarray of shape (n, ...), or a list / dict of them in the structure of ``model.inputs``
    """
    rng = np.random.default_rng(seed)
    struct = model.inputs[0] if isinstance(model, keras.Sequential) else model.input  # Sequential.input is stale

    def make(kt):
        shape = (n,) + tuple(kt.shape[1:])
        if "int" in str(kt.dtype):
            return rng.integers(0, VOCAB, size=shape).astype(kt.dtype)
        return rng.normal(size=shape).astype(kt.dtype)

    return keras.tree.map_structure(make, struct)
