"""The base of every layer kind: what weightkit knows about one family of Keras layer classes.

A :class:`LayerKind` answers every question the rest of weightkit asks about a layer of its family,
so no other module branches on a class name or a family string (Torch-Pruning's one pruner class
per layer type, ``torch_pruning/pruner/function.py``). Its data (neuron rows, penalty kernels,
merge role, units key) is readable without Keras: the TF-free file reader uses it.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.kinds.config_rules import ConfigRules
from weightkit.analysis.kinds.data_rules import DataRules
from weightkit.analysis.kinds.stream_rules import StreamRules

__all__ = ["GENERIC_SKIP", "MERGE_STEPS", "Kernel", "LayerKind", "channels_last", "grouped"]

#: What a merge walk does with a layer between a producer and its consumers (weightkit.compress.merge.planning.plan):
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

#: The reason given for a layer with weights that no kind covers.
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


def channels_last(layer):
    """Whether a layer keeps channels on its last axis (``data_format`` channels_last or none)."""
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def grouped(layer):
    """Whether a convolution splits its channels into groups (``groups`` > 1)."""
    return getattr(layer, "groups", 1) != 1


def attribute(obj, path):
    """``obj.a.b`` for ``path`` ``"a.b"``; None when a link is missing."""
    for name in path.split("."):
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj


class LayerKind(ConfigRules, DataRules, StreamRules):
    """What weightkit knows about, and does with, one family of Keras layer classes.

    Subclass it for a new family and register an instance for each class
    (:func:`weightkit.analysis.kinds.register_layer_kind`). The class attributes below are data
    (readable without Keras); the methods take live layers or configs. What the file reader asks of a
    config is in :class:`~weightkit.analysis.kinds.config_rules.ConfigRules`, what probing activations and
    checking data ask in :class:`~weightkit.analysis.kinds.data_rules.DataRules`, what slicing a residual stream
    asks in :class:`~weightkit.analysis.kinds.stream_rules.StreamRules`.

    Attributes
    ----------
    family : str
        ``dense``, ``conv``, ``conv_transpose``, ``depthwise``, ``separable``, ``rnn``,
        ``bidirectional``, ``time_distributed`` for layers with neurons; ``weights`` for layers with
        weights but no neurons (``recurrent`` for a generic RNN over a custom cell); ``step`` for
        weightless layers that merging walks through.
    variables : dict of str to str
        Weight array key -> attribute path from the layer (``"recurrent_kernel"`` ->
        ``"cell.recurrent_kernel"``); the keys are what :meth:`neuron_rows` reads.
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
    has_neurons : bool
        Whether :meth:`neuron_rows` gives rows.
    """

    family = "weights"
    variables = {}
    kernels = ()
    gates = ()
    internal = ()
    merge = None
    units_key = None
    skip = None
    wraps = None
    activation = None
    has_neurons = False

    def __init__(self, **attributes):
        for name, value in attributes.items():
            if not hasattr(type(self), name):
                raise TypeError(f"{type(self).__name__} has no attribute {name!r}; expected one of "
                                f"{sorted(k for k in dir(LayerKind) if not k.startswith('_'))}")
            setattr(self, name, value)

    def __repr__(self):
        return f"{type(self).__name__}(family={self.family!r}, merge={self.merge!r})"

    # --- rows: pure, config and arrays in -----------------------------------------------------------

    def neuron_rows(self, config, arrays):
        """``[(part or None, rows (n, fan_in), bias or None), ...]`` from the config and weight arrays alone.

        Raises
        ------
        KeyError
            For a kind without neurons.
        """
        raise KeyError(type(self).__name__)

    @property
    def rows(self):
        """:meth:`neuron_rows`, or None for a kind without neurons (the old table's ``rows`` field)."""
        return self.neuron_rows if self.has_neurons else None

    def applications(self, input_shape, output_shape):
        """How many times per sample each kernel weight is used: its output positions (None: unknown)."""
        return count(None if output_shape is None else output_shape[1:-1])

    # --- a live layer --------------------------------------------------------------------------------

    def layer_arrays(self, layer):
        """The layer's weight arrays under :attr:`variables`' keys."""
        arrays = {}
        for key, path in self.variables.items():
            variable = attribute(layer, path)
            if variable is not None:
                arrays[key] = to_numpy(variable)
        return arrays

    def rows_source(self, layer):
        """``(kind, config)`` whose :meth:`neuron_rows` reads :meth:`layer_arrays` (a wrapper: its inner one's)."""
        return self, layer.get_config()

    def wrapped_reason(self, layer):
        """Why a layer of a kind with neurons cannot be read (a wrapper of an unsupported layer), or None."""
        return None

    def entry_name(self, layer, part):
        """The analysis entry name of one part of the layer's rows."""
        return layer.name if part is None else f"{layer.name}/{part}"

    def entry_type(self, layer):
        """The type shown for the layer's entries."""
        return type(layer).__name__

    def weight_keys(self, layer):
        """The keys of the layer's weight arrays, in ``layer.weights`` order (variable names)."""
        return [variable.name for variable in layer.weights]

    def resized_config(self, config, units):
        """The config of a copy with ``units`` neurons (changed in place and returned)."""
        config[self.units_key] = units
        return config

    def kernel_layers(self, layer, name):
        """``[(entry name, layer, kind)]`` whose :attr:`kernels` the decorrelation penalty sees (a wrapper: its
        wrapped layers')."""
        return [(name, layer, self)]

    def wrapped_configs(self, config):
        """The configs of a wrapper's inner layers, in ``config`` (none for a plain layer)."""
        return []

    # --- merging ------------------------------------------------------------------------------------

    def neuron_layer(self, layer):
        """The layer holding a producer's neurons (itself for Dense/Conv), or None when it has none to merge."""
        return layer if self.merge == "neurons" else None

    def layout_problem(self, layer):
        """Why the layer's channels are not one per output index on the last axis (grouped, channels_first), or None."""
        if grouped(layer):
            return "grouped convolution: its output channels are tied to its groups"
        if not channels_last(layer):
            return "channels_first convolution is not supported"
        return None

    def producer_problem(self, layer):
        """Why the layer's output channels cannot open a group (a grouped or channels_first conv...), or None."""
        problem = self.layout_problem(layer)
        if problem is None and not isinstance(layer.get_config().get("activation", "linear"), str):
            problem = "custom activation is not supported"
        return problem

    def input_layout(self, after_flatten):
        """How the layer's input rows index a producer's channels: ``dense``, ``flatten`` (a Dense after a
        Flatten), ``conv`` or ``separable`` (see :func:`weightkit.compress.merge.applying.math.fold_into_kernel`)."""
        return "conv"

    def consumer_problem(self, layer, after_flatten):
        """Why the layer's input rows cannot absorb merged channels (``reads a flattened tensor``...), or None."""
        return f"{type(layer).__name__} cannot absorb merged channels"

    def wrapped_producer(self, layer):
        """The wrapped layer whose neurons a wrapper's channels are (a TimeDistributed(Dense/Conv)), or None."""
        return None

    def wrapped_step(self, layer):
        """The kind of a wrapped pass-through step a wrapper runs on every time step, or None."""
        return None

    def absorbing_layout(self, layer):
        """The consumer layout of a layer that absorbs a group in its input rows without a neuron role
        (a recurrent layer: ``rnn``), or None."""
        return None

    def step_problem(self, layer, rank):
        """Why a pass-through step cannot carry a group's channels (its input of rank ``rank``), or None."""
        if not channels_last(layer):
            return "uses channels_first"
        return None

    def unmergeable_reason(self, layer):
        """Why a layer with neurons of this kind merges on no path (by weights), or None."""
        return f"merging supports Dense, Conv1D/2D/3D and SeparableConv layers, not {type(layer).__name__}"

    def zero_padded(self, layer):
        """Whether the layer pads its input with zeros (a ``same``/``causal`` convolution reading a group)."""
        return False

    def input_kernels(self, layer, prefix=""):
        """``[(kernel key, bias key, bias row)]`` of the kernels whose rows are its input channels, in
        :class:`weightkit.compress.merge.applying.rebuild.WeightState`'s keys (bias row 0: a two-row GRU bias)."""
        return [(f"{prefix}kernel", f"{prefix}bias", None)]

    def input_kernel_variables(self, layer):
        """The live variables of :meth:`input_kernels`."""
        return [layer.kernel]

    def two_row_bias(self, layer):
        """Whether it keeps an input and a recurrent bias row (a GRU with ``reset_after``)."""
        return False

    def halves(self, layer):
        """``[(key prefix, half layer, its kind)]`` of a layer made of two recurrent halves, or None."""
        return None

    def config_problem(self, config):
        """Why a recurrent config cannot fold its units by data, or None."""
        return None

    #: The variable whose last axis holds its output channels (what a merge cuts).
    output_kernel = "kernel"

    def producer_kernel(self, arrays):
        """Its kernel as one ``(..., fan_in, n_outputs)`` float64 array (a SeparableConv: the composite filter)."""
        return np.asarray(arrays[self.output_kernel], dtype=np.float64)

    def output_cuts(self, layer, prefix=""):
        """``[(array key, axis)]`` that lose a removed output channel, each axis ``positions · n`` wide (channels
        fastest): its :attr:`output_kernel`'s last axis and its bias."""
        return [(prefix + self.output_kernel, -1), (prefix + "bias", 0)]

    def own_input_kernels(self, layer, prefix=""):
        """``[(kernel key, bias key, bias row)]`` whose rows read the layer's own outputs (a recurrent kernel): a
        merge of its outputs folds into them too; their rows are among :meth:`output_cuts`."""
        return []

    #: A linear chain (:mod:`weightkit.analysis.structure.linear_chains`): the family its weighted members share
    #: (``dense``, ``conv2d``...), or None for a layer that is no weighted member.
    chain_family = None
    #: Whether its kernel slides over positions (a convolution): padding then matters.
    spatial = False

    def chain_role(self, config):
        """Its part in a linear chain: ``weighted``, ``affine`` (folds into it), ``pass`` (the identity at
        inference), ``reshape`` (passes when the shape stays) or None (ends a chain)."""
        return {"identity": "pass", "flatten": "reshape", "reshape": "reshape"}.get(self.merge)

    def chain_member_ok(self, config, weight_shapes):
        """Whether a weighted layer with this config and weight shapes can be a chain member."""
        return False

    def chain_params(self, configs, first_shape, units, bias):
        """Parameters of the one layer a chain of these weighted members (configs in order) folds into."""
        raise NotImplementedError(type(self).__name__)

    #: Whether it runs over time steps: the TFLite converter needs it unrolled
    #: (:mod:`weightkit.compress.quantize.unroll`) and its units merge by data on its hidden states.
    recurrent = False

    def gate_count(self, layer=None):
        """The gates of a recurrent input kernel (SimpleRNN 1, LSTM 4, GRU 3), or None for other kinds."""
        return None

    #: Whether it loops over the time steps of its input: :attr:`recurrent` kinds and a generic RNN over a
    #: custom cell (which neither unrolls nor merges).
    over_time = False
    #: The fused TFLite op that computes it (``"lstm"``, ``"simple_rnn"``; see
    #: :mod:`weightkit.compress.quantize.fused`), or None (a GRU: TFLite has none).
    fused_op = None
    #: Whether it normalizes with moving statistics of its input (a BatchNormalization): a merge re-estimates
    #: them, a fine-tune may freeze them, and at inference it scales channel ``c`` by
    #: ``gamma[c] / sqrt(moving_variance[c] + epsilon)``.
    moving_statistics = False

    def makes_mask(self, layer):
        """Whether the layer produces a mask for the layers after it (a Masking layer; an embedding with
        ``mask_zero``: any layer of that attribute, registered or not, as ``(kind_for(layer) or LayerKind())``)."""
        return bool(getattr(layer, "mask_zero", False))

    def chain_step(self, layer):
        """Its step in a linear chain's fold (:mod:`weightkit.compress.fold.math`), weights as numpy arrays.

        Returns
        -------
        tuple
            ``("dense", kernel (fan_in, units), bias or None)``, ``("conv", kernel (*k, c_in, c_out), bias or
            None, strides, dilation)`` or ``("batchnorm", gamma or None, beta or None, mean, variance, epsilon)``
            (each of shape ``(channels,)``).
        """
        raise NotImplementedError(type(self).__name__)

    # --- reports and sampling -------------------------------------------------------------------------

    #: The config key of the window it slides over its input positions (``kernel_size`` for a convolution,
    #: ``pool_size`` for a pooling layer), or None: receptive fields follow it.
    window_key = None
    #: Whether a report draws its filters as images (Conv1D: strips, Conv2D: tiles).
    filter_images = False

    def input_sampler(self, layer):
        """``(description, draw)`` of random inputs shaped like what the layer expects to read as a model's first
        layer (a Rescaling: its range; a Normalization: its mean and spread), or None; ``draw(rng, shape)``
        returns float32 inputs."""
        return None

    # --- the README's support matrix ------------------------------------------------------------------

    #: Rank of the family in the support matrix.
    order = 99

    def support(self, name):
        """One row of the support matrix (see :func:`weightkit.analysis.kinds.support_matrix`)."""
        if self.internal == ("*",):
            probed = "no (internal to the layer)"
        elif self.internal:
            probed = "all but " + ", ".join(self.internal)
        else:
            probed = "yes"
        kernels = ", ".join(k.variable + (" (per gate)" if k.gated and len(self.gates) > 1 else "")
                            for k in self.kernels)
        return {"layer": name, "analyze": self.entries_text(), "activations": probed,
                "decorrelate": kernels or "no", "merge": self.merge_support()}

    def entries_text(self):
        return "one per " + ("filter" if self.units_key == "filters" else "unit")

    def merge_support(self):
        return "yes" if self.merge == "neurons" else "no"


def count(dims):
    """The number of positions ``dims`` hold; 1 when unknown (None) or empty."""
    if dims is None or any(d is None for d in dims):
        return 1
    return int(np.prod(dims, dtype=np.int64)) if dims else 1


def bias(arrays):
    return arrays.get("bias")


def to_numpy(variable):
    """A variable's value as a float32 numpy array."""
    keras = import_keras()
    return np.asarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)


def value_of(variable):
    """A variable's value as a numpy array of its own dtype; None for None."""
    return None if variable is None else np.asarray(import_keras().ops.convert_to_numpy(variable))


def axis_tuple(value, rank):
    """A config's per-axis value (``strides``, ``dilation_rate``: an int or a sequence) as ``rank`` ints."""
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else (int(value),) * rank
