"""The layers that absorb a merged producer's channels, and how (:class:`Consumer`).

A consumer's input-channel rows take the fold ``W[kept] += βᵀ W[removed]``: a Dense or Conv layer,
a TimeDistributed(Dense/Conv) (its wrapped kernel), a SimpleRNN/LSTM/GRU (its input kernel, every
gate at once) or a Bidirectional of one (both halves' input kernels). A TimeDistributed(Dense/Conv)
is also a producer: its wrapped layer's kernel columns are its neurons (:func:`neuron_layer`).
"""

from dataclasses import dataclass, field

from weightkit.analysis.channel_roles import channels_last
from weightkit.analysis.layers import registered_name, spec_for
from weightkit.compress.merge.input_rows import RECURRENT_GATES, input_kernels

__all__ = ["Consumer", "consumer_of", "neuron_layer", "recurrent_target"]


@dataclass
class Consumer:
    """A layer whose input channels absorb merged neurons.

    Attributes
    ----------
    layer : str
    type : str
    layout : {"dense", "conv", "flatten"}
        How its kernel indexes the producer's channels (see :func:`weightkit.compress.merge.math.fold_into_kernel`).
    positions : int
        Spatial positions per channel after a Flatten (1 otherwise).
    zero_padded : bool
        A convolution that pads with zeros: an offset folded into its bias is exact only away
        from the borders.
    target : {"plain", "rnn", "bidirectional"}
        ``plain``: a Dense/Conv kernel (a TimeDistributed layer's wrapped one); ``rnn``: a
        SimpleRNN/LSTM/GRU input kernel ``(inputs, gates · units)``, every gate's columns at once;
        ``bidirectional``: both halves' input kernels.
    keys : list of (str, str, int or None)
        For ``rnn`` and ``bidirectional``: the kernels that absorb the fold
        (:func:`weightkit.compress.merge.input_rows.input_kernels`).
    """

    layer: str
    type: str
    layout: str
    positions: int = 1
    zero_padded: bool = False
    target: str = "plain"
    keys: list = field(default_factory=list)


def _is_neuron_layer(layer):
    spec = spec_for(layer)
    return spec is not None and spec.merge == "neurons"


def neuron_layer(layer):
    """The layer holding a producer's neurons: the layer itself (Dense, Conv), the wrapped layer of a
    TimeDistributed(Dense/Conv); None for any other layer."""
    spec = spec_for(layer)
    if spec is not None and spec.family == "time_distributed":
        return layer.layer if _is_neuron_layer(layer.layer) else None
    return layer if _is_neuron_layer(layer) else None


def recurrent_target(layer):
    """``"rnn"`` for SimpleRNN/LSTM/GRU, ``"bidirectional"`` for a Bidirectional of one; None otherwise."""
    name = registered_name(layer)
    if name in RECURRENT_GATES:
        return "rnn"
    if name == "Bidirectional" and registered_name(layer.forward_layer) in RECURRENT_GATES \
            and registered_name(layer.backward_layer) in RECURRENT_GATES:
        return "bidirectional"
    return None


def consumer_of(layer, after_flatten, positions):
    """The :class:`Consumer` a layer makes when it reads a producer's channels, or (None, reason).

    Parameters
    ----------
    layer : keras.layers.Layer
    after_flatten : bool
        The channels reach it through a Flatten.
    positions : int
        Positions per channel after that Flatten.

    Returns
    -------
    consumer : Consumer or None
        None (and no reason) for a layer that is not a consumer: the walk goes on through it.
    reason : str or None
        Why the layer cannot absorb the channels.
    """
    name = type(layer).__name__
    target = recurrent_target(layer)
    if target is not None:  # its input kernel's rows absorb the fold, every gate (and half) at once
        return Consumer(layer.name, name, "flatten" if after_flatten else "dense", positions, target=target,
                        keys=input_kernels(layer)), None
    inner = neuron_layer(layer)
    if inner is None:
        return None, None
    if spec_for(inner).family == "dense":
        return Consumer(layer.name, name, "flatten" if after_flatten else "dense", positions), None
    if after_flatten:
        return None, f"{layer.name} ({name}) reads a flattened tensor"
    if getattr(inner, "groups", 1) != 1:
        return None, f"{layer.name} ({name}) is a grouped convolution"
    if not channels_last(inner):
        return None, f"{layer.name} ({name}) uses channels_first"
    return Consumer(layer.name, name, "conv", 1, inner.padding in ("same", "causal")), None
