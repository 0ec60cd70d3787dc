"""What the channel walk (:mod:`weightkit.analysis.channels`) may do with one layer: the checks on a single layer.

A producer or a pass-through step may be unable to carry a group's channels (a grouped or
channels_first convolution, a BatchNormalization of another axis, a depth multiplier); a layer may
absorb a group's channels in its input rows without opening a group of its own (a
TimeDistributed(Dense/Conv), a recurrent layer, a Bidirectional one).
"""

from weightkit.analysis.layers import registered_name, spec_for

__all__ = ["RECURRENT_LAYOUTS", "absorbing_layout", "channels_last", "producer_problem", "step_problem"]

_RECURRENT = ("SimpleRNN", "LSTM", "GRU")
#: Consumer layouts whose kernels are a recurrent layer's input kernels (every gate's columns).
RECURRENT_LAYOUTS = ("rnn", "bidirectional")


def channels_last(layer):
    """Whether a layer keeps channels on its last axis (``data_format`` channels_last or none)."""
    return getattr(layer, "data_format", "channels_last") in (None, "channels_last")


def producer_problem(layer, spec):
    """Why a producer's output channels cannot open a group, or None."""
    if getattr(layer, "groups", 1) != 1:
        return "grouped convolution: its output channels are tied to its groups"
    if not channels_last(layer):
        return "channels_first convolution is not supported"
    if not isinstance(layer.get_config().get("activation", "linear"), str):
        return "custom activation is not supported"
    if spec.merge == "separable" and int(layer.depth_multiplier) != 1:
        return "SeparableConv with depth_multiplier > 1 is not supported"
    return None


def absorbing_layout(layer):
    """The consumer layout of a layer the registry gives no neuron role, but whose input rows absorb a group.

    ``dense``/``conv`` for a TimeDistributed(Dense/Conv) (its wrapped kernel; it is a producer
    too), ``rnn`` for a SimpleRNN/LSTM/GRU (its input kernel, every gate), ``bidirectional`` for a
    Bidirectional of one (both halves' input kernels); None otherwise.
    """
    name = registered_name(layer) if hasattr(layer, "get_config") else None
    if name in _RECURRENT:
        return "rnn"
    if name == "Bidirectional" and registered_name(layer.forward_layer) in _RECURRENT \
            and registered_name(layer.backward_layer) in _RECURRENT:
        return "bidirectional"
    if name == "TimeDistributed":
        inner = spec_for(layer.layer)
        if inner is not None and inner.merge == "neurons" and getattr(layer.layer, "groups", 1) == 1 \
                and channels_last(layer.layer):
            return "dense" if inner.family == "dense" else "conv"
    return None


def step_problem(layer, role, rank):
    """Why a pass-through step cannot carry a group's channels (its input of rank ``rank``), or None."""
    if not channels_last(layer):
        return "uses channels_first"
    if role == "affine":
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        if axis not in (-1, rank - 1):
            return f"normalizes axis {layer.axis}, not the channels"
    if role == "depthwise" and int(layer.depth_multiplier) != 1:
        return "depth_multiplier > 1 is not supported"
    if role == "activation":
        name = layer.get_config().get("activation", "relu")
        if not isinstance(name, str) or name in ("softmax", "log_softmax"):
            return f"activation {name!r} does not act on each channel separately"
    return None
