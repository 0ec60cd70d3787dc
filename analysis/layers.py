"""The one table of the Keras layer classes weightkit knows, and everything it knows about each.

Each entry says, for one Keras layer class:

- how its weights become neuron rows (analysis): a *pure* function of the layer's config and
  weight arrays, so rows can be read without Keras (see :func:`neuron_rows`);
- which kernels the decorrelation penalty sees, on which object, in which layout (retraining);
- which of its analysis entries have an output one can probe (activations);
- its role in merging: a producer/consumer of neurons, a step that passes channels through
  (and how), or a layer that ties the channels of several tensors together;
- which config key holds its neuron count (rebuilding a merged model).

The table is keyed by the exact name of a public Keras layer class (``"Dense"``), so it can be
read without importing Keras. A live layer is resolved through its class's MRO, matching a class
only when it *is* the Keras class of that name (:func:`spec_for`): a subclass of ``Dense`` uses
Dense's entry, a user class that merely calls itself ``Dense`` does not. No class-name guessing.
A new layer type is one entry here.
"""

from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis._tf import import_keras

__all__ = [
    "GENERIC_SKIP",
    "LAYERS",
    "MERGE_STEPS",
    "Kernel",
    "LayerSpec",
    "neuron_rows",
    "registered_name",
    "spec_for",
    "spec_named",
    "support_matrix",
    "supported_layer_types",
]

#: What a merge walk does with a layer between a producer and its consumers (weightkit.compress.merge.plan):
#: ``identity`` passes values unchanged (dropout, noise); ``affine`` is a per-channel scale and
#: shift (BatchNormalization); ``activation`` is an element-wise function; ``max`` picks one of
#: several values (max pooling); ``linear`` mixes positions, never channels (average pooling,
#: upsampling, cropping); ``zero_pad`` pads positions with zeros; ``flatten`` turns channels and
#: positions into one axis; ``reshape`` regroups positions (channels stay last) or flattens.
#: ``couple`` layers (Add, Multiply, ...) tie the channel indices of their inputs together;
#: ``concatenate`` maps input channels onto ranges of its output. ``depthwise`` filters each
#: channel on its own (DepthwiseConv: a removed channel's filter goes too); ``separable`` is a
#: SeparableConv: a depthwise half that passes channels, then a pointwise producer/consumer.
MERGE_STEPS = ("identity", "affine", "activation", "max", "linear", "zero_pad", "flatten", "reshape", "couple",
               "concatenate", "depthwise", "separable")

#: The reason given for a layer with weights that no entry covers.
GENERIC_SKIP = "no neuron-row adapter for {name}; supported: Dense, Conv, RNN families"


@dataclass(frozen=True)
class Kernel:
    """One kernel the decorrelation penalty can be put on.

    Attributes
    ----------
    part : str or None
        The analysis entry suffix (``"pointwise"`` gives ``layer/pointwise``); None for the layer.
    owner : str
        Attribute path from the layer to the object holding the variable (``""``: the layer itself,
        ``"cell"``: an RNN's cell).
    variable : str
        Attribute of the kernel variable on the owner.
    regularizer : str
        Attribute (and config key) of the kernel's regularizer on the owner.
    layout : {"last", "transpose", "depthwise"}
        See :data:`weightkit.compress.decorrelate.penalty.LAYOUTS`.
    gated : bool
        An RNN input kernel ``(features, gates * units)``: the penalty works per gate block.
    """

    part: object
    owner: str
    variable: str
    regularizer: str
    layout: str
    gated: bool = False


@dataclass(frozen=True)
class LayerSpec:
    """What weightkit knows about one Keras layer class.

    Attributes
    ----------
    family : str
        ``dense``, ``conv``, ``conv_transpose``, ``depthwise``, ``separable``, ``rnn``,
        ``bidirectional``, ``time_distributed`` for layers with neurons; ``weights`` for layers with
        weights but no neurons (``recurrent`` for a generic RNN over a custom cell); ``step`` for
        weightless layers that merging walks through.
    variables : dict of str to str
        Weight array key -> attribute path from the layer (``"recurrent_kernel"`` ->
        ``"cell.recurrent_kernel"``); the keys are what :func:`neuron_rows` reads.
    rows : callable or None
        ``rows(config, arrays) -> [(part or None, rows (n, fan_in), bias or None), ...]``; pure.
    kernels : tuple of Kernel
        What the decorrelation penalty sees (an RNN: its input kernel, per gate).
    gates : tuple of str
        RNN gate names, in the order of the kernel's column blocks (``(None,)`` for SimpleRNN).
    internal : tuple of str
        Entry parts whose activations never leave the layer (a SeparableConv's depthwise half, an
        LSTM's gates): they cannot be probed. ``"*"``: every part.
    merge : str or None
        ``"neurons"`` (merges as a producer and absorbs merged neurons as a consumer), one of
        :data:`MERGE_STEPS`, or None (stops a merge walk).
    units_key : str or None
        The config key holding the neuron count (``units``, ``filters``).
    skip : str or None
        For layers with weights and no neurons: why they have no neuron rows.
    wraps : str or None
        Config key of a wrapped layer (``"layer"`` for TimeDistributed and Bidirectional).
    activation : str or None
        The activation a weightless activation layer applies when it is not in its config
        (``"softmax"`` for Softmax).
    """

    family: str
    variables: dict = field(default_factory=dict)
    rows: object = None
    kernels: tuple = ()
    gates: tuple = ()
    internal: tuple = ()
    merge: object = None
    units_key: object = None
    skip: object = None
    wraps: object = None
    activation: object = None

    @property
    def has_neurons(self):
        return self.rows is not None


# --- pure row extraction: config and arrays in, rows out -------------------------------------------

def _bias(arrays):
    return arrays.get("bias")


def _dense_rows(config, arrays):
    return [(None, arrays["kernel"].T, _bias(arrays))]  # kernel (fan_in, units)


def _conv_rows(config, arrays):
    kernel = arrays["kernel"]  # (*kernel_size, in_channels / groups, filters)
    return [(None, kernel.reshape(-1, kernel.shape[-1]).T, _bias(arrays))]


def _conv_transpose_rows(config, arrays):
    kernel = arrays["kernel"]  # (*kernel_size, filters, in_channels)
    return [(None, np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1), _bias(arrays))]


def _depthwise_rows(config, arrays):
    kernel = arrays["kernel"]  # (*kernel_size, in_channels, depth_multiplier)
    return [(None, kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1]).T, _bias(arrays))]


def _separable_rows(config, arrays):
    depthwise = arrays["depthwise_kernel"]  # (*k, in_channels, multiplier)
    pointwise = arrays["pointwise_kernel"]  # (1, ..., in_channels * multiplier, filters)
    return [("depthwise", depthwise.reshape(-1, depthwise.shape[-2] * depthwise.shape[-1]).T, None),
            ("pointwise", pointwise.reshape(-1, pointwise.shape[-1]).T, _bias(arrays))]


def _gated_rows(gates):
    def rows(config, arrays):
        kernel, recurrent = arrays["kernel"], arrays["recurrent_kernel"]  # (features | units, gates * units)
        bias = arrays.get("bias")
        units = recurrent.shape[0]
        parts = []
        for index, gate in enumerate(gates):
            columns = slice(index * units, (index + 1) * units)
            gate_rows = np.concatenate([kernel[:, columns].T, recurrent[:, columns].T], axis=1)
            gate_bias = None
            if bias is not None:
                gate_bias = bias[..., columns]
                gate_bias = gate_bias.T if gate_bias.ndim == 2 else gate_bias  # GRU reset_after: (2, u)
            parts.append((gate, gate_rows, gate_bias))
        return parts

    return rows


def _wrapped_class(config):
    inner = config.get("layer") or {}
    return inner.get("class_name"), inner.get("config", {})


def _bidirectional_rows(config, arrays):
    parts = []
    inner_name, _ = _wrapped_class(config)
    spec = LAYERS[inner_name]
    for direction in ("forward", "backward"):
        sub = {key.split("/", 1)[1]: value for key, value in arrays.items() if key.startswith(direction + "/")}
        for part, rows, bias in spec.rows(config, sub):
            parts.append((direction if part is None else f"{direction}/{part}", rows, bias))
    return parts


def _time_distributed_rows(config, arrays):
    inner_name, inner_config = _wrapped_class(config)
    return LAYERS[inner_name].rows(inner_config, arrays)


def neuron_rows(class_name, config, arrays):
    """The neuron rows of a layer, from its class name, config and weight arrays alone.

    Parameters
    ----------
    class_name : str
        A key of :data:`LAYERS` (``"Dense"``, ``"LSTM"``...).
    config : dict
        The layer's config (``layer.get_config()``, or ``config`` of its entry in a saved file).
    arrays : dict of str to ndarray
        Weight arrays by the keys of the entry's ``variables`` (``kernel``, ``bias``,
        ``recurrent_kernel``; ``forward/kernel`` ... for Bidirectional; a TimeDistributed layer
        takes its wrapped layer's keys).

    Returns
    -------
    list of (str or None, ndarray of shape (n_neurons, fan_in), ndarray or None)
        Per analysis entry: the part name (None for the whole layer), its rows and its bias.

    Raises
    ------
    KeyError
        When ``class_name`` has no rows (see :attr:`LayerSpec.skip`).
    """
    spec = LAYERS[class_name]
    if spec.rows is None:
        raise KeyError(class_name)
    arrays = {key: np.asarray(value, dtype=np.float32) for key, value in arrays.items()}
    return [(part, np.ascontiguousarray(rows, dtype=np.float32), bias) for part, rows, bias in spec.rows(config, arrays)]


# --- the table --------------------------------------------------------------------------------

_PLAIN = {"kernel": "kernel", "bias": "bias"}
_RNN = {"kernel": "cell.kernel", "recurrent_kernel": "cell.recurrent_kernel", "bias": "cell.bias"}
_KERNEL = (Kernel(None, "", "kernel", "kernel_regularizer", "last"),)


def _rnn(gates):
    return LayerSpec("rnn", _RNN, _gated_rows(gates), (Kernel(None, "cell", "kernel", "kernel_regularizer", "last",
                                                              gated=True),),
                     gates=gates, internal=() if gates == (None,) else ("*",), units_key="units")


def _table():
    table = {"Dense": LayerSpec("dense", _PLAIN, _dense_rows, _KERNEL, merge="neurons", units_key="units")}
    for n in ("1D", "2D", "3D"):
        table[f"Conv{n}"] = LayerSpec("conv", _PLAIN, _conv_rows, _KERNEL, merge="neurons", units_key="filters")
        table[f"Conv{n}Transpose"] = LayerSpec(
            "conv_transpose", _PLAIN, _conv_transpose_rows,
            (Kernel(None, "", "kernel", "kernel_regularizer", "transpose"),), units_key="filters")
    for n in ("1D", "2D"):
        table[f"DepthwiseConv{n}"] = LayerSpec(
            "depthwise", _PLAIN, _depthwise_rows, (Kernel(None, "", "kernel", "depthwise_regularizer", "depthwise"),),
            merge="depthwise")
        table[f"SeparableConv{n}"] = LayerSpec(
            "separable", {"depthwise_kernel": "depthwise_kernel", "pointwise_kernel": "pointwise_kernel",
                          "bias": "bias"}, _separable_rows,
            (Kernel("depthwise", "", "depthwise_kernel", "depthwise_regularizer", "depthwise"),
             Kernel("pointwise", "", "pointwise_kernel", "pointwise_regularizer", "last")),
            internal=("depthwise",), merge="separable", units_key="filters")
    table["SimpleRNN"] = _rnn((None,))
    table["LSTM"] = _rnn(("input", "forget", "cell", "output"))
    table["GRU"] = _rnn(("update", "reset", "candidate"))
    table["RNN"] = LayerSpec("recurrent", skip="a generic RNN over a custom cell: only SimpleRNN, LSTM and GRU "
                                               "are supported")
    table["Bidirectional"] = LayerSpec("bidirectional", {}, _bidirectional_rows, internal=("*",), wraps="layer")
    table["TimeDistributed"] = LayerSpec("time_distributed", {}, _time_distributed_rows, wraps="layer")

    skips = {
        "normalization layer: per-channel scale and shift, no neurons": ("BatchNormalization", "GroupNormalization"),
        "normalization layer: per-feature scale and shift, no neurons": ("LayerNormalization",),
        "embedding table: rows are tokens, not neurons": ("Embedding",),
        "preprocessing layer: stored statistics, no neurons": ("Normalization",),
        "attention layer: not supported yet": ("MultiHeadAttention",),
        "EinsumDense: not supported yet (its neuron axis depends on the equation)": ("EinsumDense",),
        "activation parameters, no neurons": ("PReLU",),
    }
    for reason, names in skips.items():
        for name in names:
            table[name] = LayerSpec("weights", skip=reason,
                                    merge="affine" if name == "BatchNormalization" else None)

    steps = {
        "identity": ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                     "GaussianDropout", "AlphaDropout", "ActivityRegularization"),
        "activation": ("Activation", "ReLU", "LeakyReLU", "ELU"),
        "max": tuple(f"{kind}MaxPooling{n}" for kind in ("", "Global") for n in ("1D", "2D", "3D")),
        "linear": tuple(f"{kind}{n}" for kind in ("AveragePooling", "GlobalAveragePooling", "UpSampling",
                                                    "Cropping") for n in ("1D", "2D", "3D")),
        "zero_pad": ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"),
        "flatten": ("Flatten",),
        "reshape": ("Reshape",),
        "couple": ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"),
        "concatenate": ("Concatenate",),
    }
    for role, names in steps.items():
        for name in names:
            table[name] = LayerSpec("step", merge=role)
    table["Softmax"] = LayerSpec("step", activation="softmax")  # mixes channels: stops a merge walk
    return table


#: Keras layer class name -> :class:`LayerSpec`.
LAYERS = _table()


def spec_named(class_name):
    """The entry of a Keras layer class name, or None."""
    return LAYERS.get(class_name)


def registered_name(layer):
    """The :data:`LAYERS` key of a live layer's class, resolved through its MRO; None when none matches.

    A class matches only when it is the public Keras class of that name (``keras.layers.Dense``),
    so a subclass of a Keras layer uses its parent's entry and an unrelated class of the same
    name matches nothing.
    """
    keras_layers = import_keras().layers
    for cls in type(layer).__mro__:
        if cls.__name__ in LAYERS and getattr(keras_layers, cls.__name__, None) is cls:
            return cls.__name__
    return None


def spec_for(layer):
    """The :class:`LayerSpec` of a live layer (see :func:`registered_name`), or None."""
    name = registered_name(layer)
    return None if name is None else LAYERS[name]


def supported_layer_types():
    """Names of the Keras layer classes whose neurons can be analyzed."""
    return sorted(name for name, spec in LAYERS.items() if spec.has_neurons)


def _merge_support(spec):
    if spec.merge in ("neurons", "separable"):
        return "yes"
    if spec.merge == "depthwise":
        return "its channels, with the layer that feeds it"
    if spec.family == "rnn":  # compress/merge/recurrent.py; as a consumer: compress/merge/input_rows.py
        return "its units by data (`--mode data`), leaving every gate; absorbs a merged layer in every gate's inputs"
    if spec.family == "bidirectional":  # compress/merge/bidirectional.py
        return ("its units by data (`--mode data`), each half on its own states (`concat`) or both together "
                "(`sum`, `ave`); absorbs a merged layer in both halves")
    if spec.family == "time_distributed":  # compress/merge/consumers.py
        return "yes, a wrapped Dense or Conv"
    return "no"


def support_matrix():
    """What works for each layer class with neurons: rows for the README's support matrix.

    Returns
    -------
    list of dict
        One per class (sorted by family, then name): ``layer``, ``analyze`` (the entries:
        ``layer``, ``layer/<gate>``...), ``activations`` (which entries can be probed),
        ``decorrelate`` (the kernels the penalty sees), ``merge`` (yes or no).
    """
    order = ("dense", "conv", "conv_transpose", "depthwise", "separable", "rnn", "bidirectional",
             "time_distributed")
    matrix = []
    for name in sorted((n for n, s in LAYERS.items() if s.has_neurons), key=lambda n: (order.index(LAYERS[n].family), n)):
        spec = LAYERS[name]
        if spec.family == "separable":
            entries = "depthwise, pointwise"
        elif spec.gates and spec.gates != (None,):
            entries = "one per gate: " + ", ".join(spec.gates)
        elif spec.family == "bidirectional":
            entries = "forward and backward, per gate"
        elif spec.family == "time_distributed":
            entries = "the wrapped layer's"
        elif spec.family == "depthwise":
            entries = "one per channel (× depth multiplier)"
        else:
            entries = "one per " + ("filter" if spec.units_key == "filters" else "unit")
        if spec.family == "time_distributed":
            probed = "as the wrapped layer"
        elif spec.internal == ("*",):
            probed = "no (internal to the layer)"
        elif spec.internal:
            probed = "all but " + ", ".join(spec.internal)
        else:
            probed = "yes"
        kernels = ", ".join(k.variable + (" (per gate)" if k.gated and len(spec.gates) > 1 else "")
                            for k in spec.kernels)
        if spec.family == "bidirectional":
            kernels = "each direction's kernel (per gate)"
        elif spec.family == "time_distributed":
            kernels = "the wrapped layer's"
        matrix.append({"layer": name, "analyze": entries, "activations": probed, "decorrelate": kernels or "no",
                       "merge": _merge_support(spec)})
    return matrix
