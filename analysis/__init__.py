"""Measure neuron redundancy in trained Keras models.

The verbs: :func:`analyze` (a model or its file -> :class:`ModelAnalysis`) and
:func:`analyze_activations` (a model and data -> :class:`ActivationAnalysis`); both results
have ``layer(name)`` and ``to_dict()``. The numeric core (:func:`pearson_matrix`,
:func:`mad_matrix`, :func:`find_groups`) is pure numpy/scipy; :func:`load_model` and the verbs
bring in Keras only when called.
"""

from analysis.activations import ActivationAnalysis, LayerActivations, analyze_activations, attach_activations
from analysis.api import analyze
from analysis.data import Dataset, load_data
from analysis.data_checks import load_data_for_model
from analysis.errors import WeightkitError
from analysis.groups import DEFAULT_THRESHOLDS, METRICS, cluster_linkage, cluster_order, find_groups, removable_count
from analysis.layers import supported_layer_types
from analysis.loading import LoadedModel, is_saved_model_dir, load_model, walk_layers
from analysis.matrices import mad_backend, mad_matrix, pearson_matrix
from analysis.model_analysis import analyze_rows, iter_layer_analyses
from analysis.results import LayerAnalysis, LayerMatrices, ModelAnalysis, SkippedLayer
from analysis.rows import NeuronRows, layer_neuron_rows

__version__ = "0.1.0"

__all__ = [
    "ActivationAnalysis",
    "DEFAULT_THRESHOLDS",
    "Dataset",
    "LayerActivations",
    "LayerAnalysis",
    "LayerMatrices",
    "LoadedModel",
    "METRICS",
    "ModelAnalysis",
    "NeuronRows",
    "SkippedLayer",
    "WeightkitError",
    "analyze",
    "analyze_activations",
    "analyze_rows",
    "attach_activations",
    "cluster_linkage",
    "cluster_order",
    "find_groups",
    "is_saved_model_dir",
    "iter_layer_analyses",
    "layer_neuron_rows",
    "load_data",
    "load_data_for_model",
    "load_model",
    "mad_backend",
    "mad_matrix",
    "pearson_matrix",
    "removable_count",
    "supported_layer_types",
    "walk_layers",
]
