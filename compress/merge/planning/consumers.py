"""The layers that absorb a merged producer's channels, and how (:class:`Consumer`).

A consumer's input-channel rows take the fold ``W[kept] += βᵀ W[removed]``: a Dense or Conv layer,
a TimeDistributed(Dense/Conv) (its wrapped kernel), a SimpleRNN/LSTM/GRU (its input kernel, every
gate at once) or a Bidirectional of one (both halves' input kernels). A TimeDistributed(Dense/Conv)
is also a producer: its wrapped layer's kernel columns are its neurons (:func:`neuron_layer`).
"""

from dataclasses import dataclass

from weightkit.analysis.kinds.registry import kind_for

__all__ = ["Consumer", "consumer_of", "neuron_layer", "recurrent_target"]


@dataclass
class Consumer:
    """A layer whose input channels absorb merged neurons.

    Attributes
    ----------
    layer : str
    type : str
    layout : {"dense", "conv", "flatten"}
        How its kernel indexes the producer's channels (see
        :func:`weightkit.compress.merge.applying.folding.fold_rows`).
    positions : int
        Spatial positions per channel after a Flatten (1 otherwise).
    zero_padded : bool
        A convolution that pads with zeros: an offset folded into its bias is exact only away
        from the borders.
    target : {"plain", "rnn", "bidirectional"}
        ``plain``: a Dense/Conv kernel (a TimeDistributed layer's wrapped one); ``rnn``: a
        SimpleRNN/LSTM/GRU input kernel ``(inputs, gates · units)``, every gate's columns at once;
        ``bidirectional``: both halves' input kernels (the layer's kind names them:
        :func:`weightkit.compress.merge.applying.apply_group.input_keys`).
    """

    layer: str
    type: str
    layout: str
    positions: int = 1
    zero_padded: bool = False
    target: str = "plain"


def neuron_layer(layer):
    """The layer holding a producer's neurons: the layer itself (Dense, Conv), the wrapped layer of a
    TimeDistributed(Dense/Conv); None for any other layer."""
    kind = kind_for(layer)
    return None if kind is None else kind.neuron_layer(layer)


def recurrent_target(layer):
    """``"rnn"`` for SimpleRNN/LSTM/GRU, ``"bidirectional"`` for a Bidirectional of one; None otherwise."""
    kind = kind_for(layer)
    return None if kind is None or not kind.recurrent else kind.absorbing_layout(layer)


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
        return Consumer(layer.name, name, "flatten" if after_flatten else "dense", positions, target=target), None
    inner = neuron_layer(layer)
    if inner is None:
        return None, None
    kind = kind_for(inner)
    problem = kind.consumer_problem(inner, after_flatten)
    if problem:
        return None, f"{layer.name} ({name}) {problem}"
    return Consumer(layer.name, name, kind.input_layout(after_flatten), positions, kind.zero_padded(inner)), None
