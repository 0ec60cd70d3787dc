"""The activation analysis result: small dataclasses that reports render and ``to_dict`` serializes.

See :mod:`weightkit.analysis.activations` for how they are computed.
"""

from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis.results import LayerMatrices, layer_named

__all__ = ["ActivationSample", "LayerActivations", "ActivationAnalysis"]


@dataclass
class ActivationSample:
    """The activations of one entry on the sample.

    Attributes
    ----------
    name : str
        The analysis entry name (as in :class:`analysis.NeuronRows`).
    layer_name, type : str
        The Keras layer and its class name.
    values : ndarray of shape (n_neurons, n_columns), float32
        One neuron per row; one column per input (``summary="mean"`` or a layer without
        positions) or per sampled (input, position).
    minimum, maximum : ndarray of shape (n_neurons,), float64
        Each neuron's smallest and largest value over every input and every position.
    summary : {"values", "mean", "positions"}
        ``values`` when the layer has no positions (Dense on a flat input).
    samples : int
        Input samples the columns come from.
    state : bool
        The output of a recurrent layer whose weight entries are its gates (or a Bidirectional's halves):
        an entry of its own, with no weight rows.
    heads : dict or None
        Attention heads' statistics (:mod:`weightkit.analysis.activations.heads`): ``entropy``,
        ``entropy_ratio``, ``contribution`` per head, and the flagged ``uniform`` and ``silent`` heads.
    """

    name: str
    layer_name: str
    type: str
    values: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    summary: str
    samples: int
    state: bool = False
    heads: dict = None

    @property
    def n_neurons(self):
        return self.values.shape[0]


@dataclass
class LayerActivations:
    """Functional redundancy of one entry: dead neurons and activation similarity.

    Attributes
    ----------
    name, layer_name, type : str
        As in :class:`analysis.LayerAnalysis`; neuron ``i`` here is neuron ``i`` there.
    neurons : int
    samples : int
        Input samples the activations were computed on.
    summary : {"values", "mean", "positions"}
    dead : list of int
        Neurons constant on the sample (ReLU: never above zero), sorted.
    groups : list of list of int
        Redundant groups from the activation matrix of ``metric``.
    removable : int
    metric : {"pearson", "mad"}
    pearson_mean_abs_offdiag, pearson_max_offdiag : float
    mad_median_offdiag, mad_min_offdiag : float
    threshold_value : float
    matrices : LayerMatrices or None
        ``rows`` are the activations, shape (n_neurons, n_columns); kept only on request.
    state : bool
        A recurrent layer's hidden state (see :class:`ActivationSample`): no weight entry has its name.
    heads : dict or None
        Attention heads' entropy and contribution (see :class:`ActivationSample`).
    """

    name: str
    layer_name: str
    type: str
    neurons: int
    samples: int
    summary: str
    dead: list
    groups: list
    removable: int
    metric: str
    pearson_mean_abs_offdiag: float
    pearson_max_offdiag: float
    mad_median_offdiag: float
    mad_min_offdiag: float
    threshold_value: float
    matrices: LayerMatrices = None
    state: bool = False
    heads: dict = None

    def to_dict(self):
        """The entry's names and size, then the keys of :meth:`to_extras`."""
        return {"name": self.name, "layer": self.layer_name, "type": self.type, "neurons": self.neurons,
                **self.to_extras()}

    def to_extras(self):
        """The keys this entry adds to its layer in ``analyze --json``."""
        return {
            "dead": [int(i) for i in self.dead],
            "activation": {
                "groups": [list(map(int, group)) for group in self.groups],
                "removable": self.removable,
                "pearson": {
                    "mean_abs_offdiag": self.pearson_mean_abs_offdiag,
                    "max_offdiag": self.pearson_max_offdiag,
                },
                "mad": {"median_offdiag": self.mad_median_offdiag, "min_offdiag": self.mad_min_offdiag},
                "threshold_value": self.threshold_value,
                "samples": self.samples,
                "summary": self.summary,
            },
            **({} if self.heads is None else {"heads": self.heads}),
        }


@dataclass
class ActivationAnalysis:
    """Functional redundancy of a model on a data sample.

    Attributes
    ----------
    samples : int
        Inputs run through the model.
    seed : int
    summary : {"mean", "positions"}
        How layers with positions were summarized.
    metric : {"pearson", "mad"}
    threshold : float
    layers : list of LayerActivations
    skipped : list of SkippedLayer
        Entries with no probe-able activation, with the reason.
    source : str or None
        Where the inputs came from (``sklearn:digits (training split)``); None for an array.
    """

    samples: int
    seed: int
    summary: str
    metric: str
    threshold: float
    layers: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    source: str = None

    def layer(self, name):
        """The activations analysis of the entry called ``name``."""
        return layer_named(self.layers, name)

    def to_dict(self):
        return {
            "samples": self.samples,
            "seed": self.seed,
            "summary": self.summary,
            "metric": self.metric,
            "threshold": self.threshold,
            "source": self.source,
            "layers": [layer.to_dict() for layer in self.layers],
            "skipped": [layer.to_dict() for layer in self.skipped],
        }
