"""Measure neuron redundancy in trained Keras models.

The verbs: :func:`analyze` (a model or its file -> :class:`ModelAnalysis`) and
:func:`analyze_activations` (a model and data -> :class:`ActivationAnalysis`); both results
have ``layer(name)`` and ``to_dict()``. The numeric core (:func:`pearson_matrix`,
:func:`mad_matrix`, :func:`find_groups`) is pure numpy/scipy; :func:`load_model` and the verbs
bring in Keras only when called. Weight analysis of a file (:func:`analyze` without data) never
imports TensorFlow or Keras (see :mod:`analysis.stored`).

Names are imported on first use (PEP 562), so ``import analysis`` costs almost nothing and a
command pays only for the modules it uses.
"""

import importlib

from analysis.errors import WeightkitError

#: Public name -> the module that defines it, imported on first use.
_LAZY = {
    "ActivationAnalysis": "analysis.activations",
    "LayerActivations": "analysis.activations",
    "analyze_activations": "analysis.activations",
    "attach_activations": "analysis.activations",
    "analyze": "analysis.api",
    "Dataset": "analysis.data",
    "load_data": "analysis.data",
    "load_data_for_model": "analysis.data_checks",
    "DEFAULT_THRESHOLDS": "analysis.groups",
    "METRICS": "analysis.groups",
    "cluster_linkage": "analysis.groups",
    "cluster_order": "analysis.groups",
    "find_groups": "analysis.groups",
    "removable_count": "analysis.groups",
    "supported_layer_types": "analysis.layers",
    "LoadedModel": "analysis.loading",
    "is_saved_model_dir": "analysis.loading",
    "load_model": "analysis.loading",
    "walk_layers": "analysis.loading",
    "mad_backend": "analysis.matrices",
    "mad_matrix": "analysis.matrices",
    "pearson_matrix": "analysis.matrices",
    "analyze_rows": "analysis.model_analysis",
    "iter_layer_analyses": "analysis.model_analysis",
    "LayerAnalysis": "analysis.results",
    "LayerMatrices": "analysis.results",
    "ModelAnalysis": "analysis.results",
    "SkippedLayer": "analysis.results",
    "NeuronRows": "analysis.rows",
    "layer_neuron_rows": "analysis.rows",
    "StoredModel": "analysis.stored",
    "open_stored": "analysis.stored",
}

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_THRESHOLDS",
    "METRICS",
    "ActivationAnalysis",
    "Dataset",
    "LayerActivations",
    "LayerAnalysis",
    "LayerMatrices",
    "LoadedModel",
    "ModelAnalysis",
    "NeuronRows",
    "SkippedLayer",
    "StoredModel",
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
    "open_stored",
    "pearson_matrix",
    "removable_count",
    "supported_layer_types",
    "walk_layers",
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
