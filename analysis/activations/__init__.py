"""What neurons *do* on data: collect a model's activations and summarise them per layer.

:func:`analyze_activations` runs a seeded sample through the model once
(:mod:`~weightkit.analysis.activations.collect`), then finds dead neurons and the activation Pearson/MAD
matrices and groups of every probed entry (:mod:`~weightkit.analysis.activations.stats`);
:func:`attach_activations` joins the result to a weight analysis.
"""

from weightkit.analysis.activations.analyze import analyze_activations, attach_activations
from weightkit.analysis.activations.collect import (
    DEFAULT_SAMPLES,
    SUMMARIES,
    collect_activations,
    collect_layer_outputs,
    sample_indices,
)
from weightkit.analysis.activations.results import ActivationAnalysis, ActivationSample, LayerActivations
from weightkit.analysis.activations.stats import (
    DEFAULT_DEAD_TOLERANCE,
    analyze_activation_matrix,
    dead_neurons,
    layer_activations,
)

__all__ = [
    "DEFAULT_DEAD_TOLERANCE",
    "DEFAULT_SAMPLES",
    "SUMMARIES",
    "ActivationAnalysis",
    "ActivationSample",
    "LayerActivations",
    "analyze_activation_matrix",
    "analyze_activations",
    "attach_activations",
    "collect_activations",
    "collect_layer_outputs",
    "dead_neurons",
    "layer_activations",
    "sample_indices",
]
