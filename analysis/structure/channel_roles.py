"""What the channel walk (:mod:`weightkit.analysis.structure.channels`) may do with one layer: the checks on a single layer.

Each check is the layer's kind's (:mod:`weightkit.analysis.kinds`): a producer or a pass-through
step may be unable to carry a group's channels (a grouped or channels_first convolution, a
BatchNormalization of another axis, a depth multiplier); a layer may absorb a group's channels in
its input rows without opening a group of its own (a TimeDistributed(Dense/Conv), a recurrent
layer, a Bidirectional one).
"""

from weightkit.analysis.kinds.base import channels_last
from weightkit.analysis.kinds.registry import kind_for

__all__ = ["RECURRENT_LAYOUTS", "absorbing_layout", "channels_last", "producer_problem", "step_problem"]

#: Consumer layouts whose kernels are a recurrent layer's input kernels (every gate's columns).
RECURRENT_LAYOUTS = ("rnn", "bidirectional")


def producer_problem(layer, spec):
    """Why a producer's output channels cannot open a group, or None (``spec``: the layer's kind)."""
    return spec.producer_problem(layer)


def absorbing_layout(layer):
    """The consumer layout of a layer the registry gives no neuron role, but whose input rows absorb a group.

    ``dense``/``conv`` for a TimeDistributed(Dense/Conv) (its wrapped kernel; it is a producer
    too), ``rnn`` for a SimpleRNN/LSTM/GRU (its input kernel, every gate), ``bidirectional`` for a
    Bidirectional of one (both halves' input kernels); None otherwise.
    """
    kind = kind_for(layer) if hasattr(layer, "get_config") else None
    return None if kind is None else kind.absorbing_layout(layer)


def step_problem(layer, role, rank):
    """Why a pass-through step cannot carry a group's channels (its input of rank ``rank``), or None."""
    return kind_for(layer).step_problem(layer, rank)
