"""Measure neuron redundancy in trained Keras models.

The verbs: :func:`analyze` (a model or its file -> :class:`ModelAnalysis`) and
:func:`analyze_activations` (a model and data -> :class:`ActivationAnalysis`); both results
have ``layer(name)`` and ``to_dict()``. The numeric core (:func:`pearson_matrix`,
:func:`mad_matrix`, :func:`find_groups`) is pure numpy/scipy; :func:`load_model` and the verbs
bring in Keras only when called. Weight analysis of a file (:func:`analyze` without data) never
imports TensorFlow or Keras (see :mod:`weightkit.analysis.files.stored`).

Names are imported on first use (PEP 562), so ``import weightkit.analysis`` costs almost nothing and a
command pays only for the modules it uses.
"""

from weightkit.analysis._lazy import lazy_names

from weightkit.analysis.errors import WeightkitError

#: Public name -> the module that defines it, imported on first use.
_LAZY = {
    "ActivationAnalysis": "weightkit.analysis.activations",
    "LayerActivations": "weightkit.analysis.activations",
    "analyze_activations": "weightkit.analysis.activations",
    "attach_activations": "weightkit.analysis.activations",
    "analyze": "weightkit.analysis.api",
    "Dataset": "weightkit.analysis.data.datasets",
    "load_data": "weightkit.analysis.data.datasets",
    "load_data_for_model": "weightkit.analysis.data.checks",
    "DEFAULT_THRESHOLDS": "weightkit.analysis.numeric.groups",
    "METRICS": "weightkit.analysis.numeric.groups",
    "cluster_linkage": "weightkit.analysis.numeric.groups",
    "cluster_order": "weightkit.analysis.numeric.groups",
    "find_groups": "weightkit.analysis.numeric.groups",
    "removable_count": "weightkit.analysis.numeric.groups",
    "LayerKind": "weightkit.analysis.kinds",
    "register_layer_kind": "weightkit.analysis.kinds",
    "supported_layer_types": "weightkit.analysis.kinds.layers",
    "LoadedModel": "weightkit.analysis.files.loading",
    "is_saved_model_dir": "weightkit.analysis.files.loading",
    "load_model": "weightkit.analysis.files.loading",
    "walk_layers": "weightkit.analysis.files.loading",
    "mad_backend": "weightkit.analysis.numeric.matrices",
    "mad_matrix": "weightkit.analysis.numeric.matrices",
    "pearson_matrix": "weightkit.analysis.numeric.matrices",
    "analyze_rows": "weightkit.analysis.model_analysis",
    "iter_layer_analyses": "weightkit.analysis.model_analysis",
    "LayerAnalysis": "weightkit.analysis.results",
    "LayerMatrices": "weightkit.analysis.results",
    "ModelAnalysis": "weightkit.analysis.results",
    "SkippedLayer": "weightkit.analysis.results",
    "NeuronRows": "weightkit.analysis.rows",
    "layer_neuron_rows": "weightkit.analysis.rows",
    "StoredModel": "weightkit.analysis.files.stored",
    "open_stored": "weightkit.analysis.files.stored",
}


__all__ = [
    "DEFAULT_THRESHOLDS",
    "METRICS",
    "ActivationAnalysis",
    "Dataset",
    "LayerActivations",
    "LayerKind",
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
    "register_layer_kind",
    "removable_count",
    "supported_layer_types",
    "walk_layers",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
