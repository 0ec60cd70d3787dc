"""One class per layer kind: everything weightkit knows about, and does with, each family of Keras layers.

:class:`LayerKind` is the base; each module holds one family (:mod:`~.dense`, :mod:`~.conv`,
:mod:`~.depthwise`, :mod:`~.recurrent`, :mod:`~.wrappers`, :mod:`~.attention`, :mod:`~.einsum`,
:mod:`~.composites`, layers with weights and no neurons in :mod:`~.weights`, :mod:`~.preprocessing` and
:mod:`~.masking`, and the steps a merge walks through: :mod:`~.normalization`, :mod:`~.activations`,
:mod:`~.pooling`, :mod:`~.reshape`, :mod:`~.joins`); :class:`~.config_rules.ConfigRules` and
:class:`~.data_rules.DataRules` are the parts of the base that answer from a saved config and for data probes;
:mod:`~.registry` maps Keras class names, and the classes a user registers with
:func:`register_layer_kind`, to kinds. The package imports without Keras.
"""

from weightkit.analysis.kinds.base import GENERIC_SKIP, MERGE_STEPS, Kernel, LayerKind, channels_last
from weightkit.analysis.kinds.conv import ConvKind, ConvTransposeKind
from weightkit.analysis.kinds.dense import DenseKind
from weightkit.analysis.kinds.depthwise import DepthwiseKind, SeparableKind
from weightkit.analysis.kinds.joins import JoinKind
from weightkit.analysis.kinds.recurrent import GRUKind, RecurrentKind
from weightkit.analysis.kinds.registry import KINDS, kind_for, kind_named, register_layer_kind, registered_name
from weightkit.analysis.kinds.support import support_matrix, supported_layer_types
from weightkit.analysis.kinds.wrappers import BidirectionalKind, TimeDistributedKind

__all__ = [
    "GENERIC_SKIP",
    "KINDS",
    "MERGE_STEPS",
    "BidirectionalKind",
    "ConvKind",
    "ConvTransposeKind",
    "DenseKind",
    "DepthwiseKind",
    "GRUKind",
    "JoinKind",
    "Kernel",
    "LayerKind",
    "RecurrentKind",
    "SeparableKind",
    "TimeDistributedKind",
    "channels_last",
    "kind_for",
    "kind_named",
    "register_layer_kind",
    "registered_name",
    "support_matrix",
    "supported_layer_types",
]
