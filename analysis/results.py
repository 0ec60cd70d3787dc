"""The analysis result: a small dataclass tree that reports render and ``to_dict`` serializes."""

from dataclasses import dataclass, field

import numpy as np

__all__ = ["LayerAnalysis", "LayerMatrices", "ModelAnalysis", "SkippedLayer"]


@dataclass
class LayerMatrices:
    """The full matrices of one layer, kept only while a layer is being reported.

    Attributes
    ----------
    rows : ndarray of shape (n_neurons, fan_in)
        The rows that were compared (bias appended when requested).
    pearson : ndarray of shape (n_neurons, n_neurons)
    mad : ndarray of shape (n_neurons, n_neurons)
    linkage : ndarray of shape (n_neurons - 1, 4)
        Complete-linkage tree on the chosen metric.
    order : ndarray of shape (n_neurons,)
        Leaf order of that tree: redundant neurons are contiguous in it.
    """

    rows: np.ndarray
    pearson: np.ndarray
    mad: np.ndarray
    linkage: np.ndarray
    order: np.ndarray


@dataclass
class LayerAnalysis:
    """Redundancy of one layer (or one part of a layer: ``sep/pointwise``, ``lstm/forget``)."""

    name: str
    layer_name: str
    type: str
    neurons: int
    fan_in: int
    params: int
    macs: int
    groups: list
    removable: int
    pearson_mean_abs_offdiag: float
    pearson_max_offdiag: float
    mad_median_offdiag: float
    mad_min_offdiag: float
    threshold_value: float
    pearson_chance_pairs: float = None
    matrices: LayerMatrices = None
    extras: dict = field(default_factory=dict)

    @property
    def removable_params(self):
        """Parameters of this layer's own that merging its groups would remove."""
        return int(round(self.removable * self.params / max(self.neurons, 1)))

    def to_dict(self):
        document = {
            "name": self.name,
            "layer": self.layer_name,
            "type": self.type,
            "neurons": self.neurons,
            "fan_in": self.fan_in,
            "params": self.params,
            "macs": self.macs,
            "groups": [list(map(int, group)) for group in self.groups],
            "removable": self.removable,
            "removable_params": self.removable_params,
            "pearson": {
                "mean_abs_offdiag": self.pearson_mean_abs_offdiag,
                "max_offdiag": self.pearson_max_offdiag,
                "expected_chance_pairs": self.pearson_chance_pairs,
            },
            "mad": {
                "median_offdiag": self.mad_median_offdiag,
                "min_offdiag": self.mad_min_offdiag,
            },
            "threshold_value": self.threshold_value,
        }
        document.update(self.extras)
        return document


@dataclass
class SkippedLayer:
    """A layer (or layer part) with weights that was not analyzed, and why.

    Attributes
    ----------
    name, type, reason : str
    params : int or None
        Its parameters, when known.
    macs : int or None
        Its multiply-accumulates per sample, when known (layers with a neuron-row adapter that
        were skipped for their content: one neuron, NaN or Inf weights).
    """

    name: str
    type: str
    reason: str
    params: int = None
    macs: int = None

    def to_dict(self):
        document = {"name": self.name, "type": self.type, "reason": self.reason}
        if self.params is not None:
            document["params"] = int(self.params)
        if self.macs is not None:
            document["macs"] = int(self.macs)
        return document


@dataclass
class ModelAnalysis:
    """Redundancy of a whole model.

    Attributes
    ----------
    model : str
        The model's name.
    path : str or None
        The file it was loaded from.
    metric : {"pearson", "mad"}
        The metric the groups were found with.
    threshold : float
        Pearson r, or the fraction of each layer's median MAD.
    include_bias : bool
    layers : list of LayerAnalysis
    skipped : list of SkippedLayer
    total_params : int
    notes : list of str
    linear_chains : list of weightkit.analysis.structure.linear_chains.LinearChain
        Runs of layers with no nonlinearity between them (see :mod:`weightkit.analysis.structure.linear_chains`).
    states : list of weightkit.analysis.activations.LayerActivations
        With data: the outputs of recurrent layers whose weight entries are their gates (LSTM, GRU,
        Bidirectional), analyzed as entries of their own (``"states"`` in :meth:`to_dict` when there are any).
    """

    model: str
    path: str
    metric: str
    threshold: float
    include_bias: bool
    layers: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    total_params: int = 0
    notes: list = field(default_factory=list)
    linear_chains: list = field(default_factory=list)
    states: list = field(default_factory=list)

    @property
    def removable(self):
        return int(sum(layer.removable for layer in self.layers))

    def layer(self, name):
        """The analysis of the entry called ``name``."""
        return layer_named(self.layers, name)

    def to_dict(self):
        return {
            "model": self.model,
            "path": self.path,
            "metric": self.metric,
            "threshold": self.threshold,
            "include_bias": self.include_bias,
            "layers": [layer.to_dict() for layer in self.layers],
            "skipped": [layer.to_dict() for layer in self.skipped],
            "totals": {
                "params": self.total_params,
                "analyzed_params": int(sum(layer.params for layer in self.layers)),
                "removable": self.removable,
                "removable_params": int(sum(layer.removable_params for layer in self.layers)),
            },
            "notes": list(self.notes),
            "linear_chains": [chain.to_dict() for chain in self.linear_chains],
            **({"states": [state.to_dict() for state in self.states]} if self.states else {}),
        }


def layer_named(layers, name):
    """The first item of ``layers`` whose ``name`` is ``name``; KeyError when there is none.

    Shared by the ``layer(name)`` lookups of the result trees (weights and activations).
    """
    for layer in layers:
        if layer.name == name:
            return layer
    raise KeyError(name)
