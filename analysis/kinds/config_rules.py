"""What the TF-free file reader asks a kind: rules on a saved configuration alone, no Keras and no arrays.

:class:`ConfigRules` is a base of :class:`~weightkit.analysis.kinds.base.LayerKind`. It says which
entry parts a config gives, where a file keeps the layer's arrays, the output shape of a call and
the weight shapes Keras' ``build`` makes from its input shape, the parameters a config declares
before Keras allocates them, and why a stored wrapper has no rows. Every method is pure; where a
kind does not know, it answers None. The helpers below are the shape arithmetic the kinds share.
"""

import math
from typing import NamedTuple

__all__ = ["RANGE_KEEPING", "SAME_SHAPE_ROLES", "ConfigRules", "Wrapped", "as_tuple", "channels_first",
           "conv_output_shape", "input_channels", "kernel_positions", "positive_int", "window_positions",
           "without_bias"]

#: Merge roles of the steps whose output has their input's shape.
SAME_SHAPE_ROLES = ("identity", "activation", "affine")
#: Merge roles of the steps whose every output value lies within the range of the values they read, or is 0:
#: token ids go through them unchanged in range (:mod:`weightkit.analysis.data.token_ids`).
RANGE_KEEPING = frozenset({"identity", "max", "linear", "zero_pad", "flatten", "reshape", "concatenate"})


class Wrapped(NamedTuple):
    """One layer a wrapper saves inside its own (a TimeDistributed's layer, a Bidirectional's halves).

    Attributes
    ----------
    prefix : str
        Put before its array keys in the wrapper's (``"forward/"``; ``""`` for TimeDistributed).
    group : str
        Its group under the wrapper's in a Keras 3 file (``"forward_layer"``, ``"layer"``).
    legacy_prefix : str or None
        What one part of its weight names starts with in a legacy ``.h5`` (``"forward_"``); None: every
        weight of the wrapper is its.
    class_name : str or None
    config : dict
    """

    prefix: str
    group: str
    legacy_prefix: object
    class_name: object
    config: dict


def as_tuple(value, rank):
    """A config's per-axis value (an int or a sequence) as a tuple of ``rank`` values (a sequence as it is)."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * rank


def channels_first(config):
    """Whether a config puts channels on axis 1 (``data_format="channels_first"``)."""
    return config.get("data_format") == "channels_first"


def positive_int(value):
    return isinstance(value, int) and value > 0


def input_channels(config, input_shape):
    """The channels of an input shape (axis 1 under channels_first, else the last), or None when unknown."""
    if input_shape is None or len(input_shape) <= 1:
        return None
    return input_shape[1] if channels_first(config) else input_shape[-1]


def kernel_positions(config):
    """The positions a convolution's window covers (``prod(kernel_size)``); None for an invalid size."""
    size = config.get("kernel_size")
    size = [size] if isinstance(size, int) else size
    if not isinstance(size, list) or not all(positive_int(k) for k in size):
        return None
    return math.prod(size)


def window_positions(spatial, config, transpose=False):
    """The output positions of a sliding window (``kernel_size``, ``strides``, ``dilation_rate``, ``padding``) over
    ``spatial`` input positions (None: unknown)."""
    rank = len(spatial)
    kernel, strides = as_tuple(config.get("kernel_size", 1), rank), as_tuple(config.get("strides", 1), rank)
    dilation, padding = as_tuple(config.get("dilation_rate", 1), rank), config.get("padding", "valid")
    out = []
    for size, k, s, d in zip(spatial, kernel, strides, dilation):
        if size is None:
            out.append(None)
        elif transpose:
            effective = (k - 1) * d + 1
            out.append(size * s + max(effective - s, 0) if padding == "valid" else size * s)
        elif padding == "valid":
            out.append((size - d * (k - 1) - 1) // s + 1)
        else:
            out.append((size - 1) // s + 1)
    return tuple(out)


def conv_output_shape(config, input_shape, channels, transpose=False):
    """The output shape of a sliding window (a convolution, a pooling layer) with ``channels`` output channels.

    Parameters
    ----------
    config : dict
        ``kernel_size``, ``strides``, ``dilation_rate``, ``padding``, ``data_format``.
    input_shape : tuple
        Batch axis included.
    channels : int or None
    transpose : bool, default=False
        A transposed convolution (its positions grow).

    Returns
    -------
    tuple
    """
    first = channels_first(config)
    out = window_positions(input_shape[2:] if first else input_shape[1:-1], config, transpose)
    return (input_shape[0], channels) + out if first else (input_shape[0],) + out + (channels,)


def without_bias(shapes, config):
    """``shapes`` without its ``bias`` when the config says ``use_bias=False``."""
    if not config.get("use_bias", True):
        del shapes["bias"]
    return shapes


class ConfigRules:
    """The questions the file reader (:mod:`weightkit.analysis.files.stored`) and the declared-size check
    (:mod:`weightkit.analysis.files.declared_size`) ask a kind, answered from a config alone.

    Attributes
    ----------
    rank : int
        The spatial axes of a convolution's kernel (Conv2D: 2); 1 for other kinds.
    stored_group : str
        The sublayer group of a Keras 3 file holding its ``vars`` (``"cell"`` for an RNN; ``""``: its own).
    stored_vars : dict or None
        Key -> (sublayer group or ``""``, index in its ``vars``) for a kind whose arrays lie in several
        sublayers (attention); None: :attr:`stored_order` in :attr:`stored_group`.
    legacy_vars : dict
        Key -> (sublayer name, variable name) in a legacy ``.h5``; empty: the variable name is the key.
    legacy_aliases : dict
        Legacy variable names that differ from its key (Keras 2's DepthwiseConv2D ``depthwise_kernel``).
    same_shape : bool
        Whether its output has its input's shape (beside the :data:`SAME_SHAPE_ROLES` steps).
    """

    rank = 1
    stored_group = ""
    stored_vars = None
    legacy_vars = {}
    legacy_aliases = {}
    same_shape = False

    @property
    def stored_order(self):
        """The keys of its arrays in the order Keras 3 saves them as ``vars/0, 1, ...`` (its :attr:`variables`';
        a layer without a bias stores one fewer)."""
        return tuple(self.variables)

    def entry_parts(self, config):
        """The parts of its analysis entries a config gives, before any array is read (``[None]``: one entry)."""
        return [None]

    def stored_wrapped(self, config):
        """The :class:`Wrapped` layers a wrapper saves inside its own; [] for a plain layer."""
        return []

    def wrapped_config_reason(self, config):
        """Why a stored layer of a kind with neurons has no rows (a wrapper of an unsupported layer), or None."""
        return None

    def stored_entry(self, name, class_name, config):
        """``(base name, type)`` of a stored layer's entries (a TimeDistributed: its wrapped layer's)."""
        return name, class_name

    def output_shape(self, config, input_shape):
        """The output shape of one call from its input shape (batch axis included), or None where unknown."""
        return input_shape if self.same_shape or self.merge in SAME_SHAPE_ROLES else None

    def weight_shapes(self, config, input_shape):
        """The shapes Keras' ``build`` gives its weights by array key (None in a shape: a dimension not known
        here), from its first call's input shape (None: unknown); None for a kind these rules do not know."""
        return None

    def declared_parameters(self, config, width):
        """The parameters its config declares on an input of ``width`` channels (None: unknown), or None when
        not known here."""
        return None

    def keeps_value_range(self):
        """Whether every value it outputs lies within the range of the values it reads, or is 0 (a step)."""
        return self.family == "step" and self.merge in RANGE_KEEPING
