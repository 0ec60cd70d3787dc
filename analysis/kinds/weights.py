"""Layers with weights but no neurons weightkit merges: embeddings, preprocessing, attention, PReLU."""

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["KINDS"]

_SKIPS = {
    "embedding table: rows are tokens, not neurons": ("Embedding",),
    "preprocessing layer: stored statistics, no neurons": ("Normalization",),
    "attention layer: not supported yet": ("MultiHeadAttention",),
    "EinsumDense: not supported yet (its neuron axis depends on the equation)": ("EinsumDense",),
    "activation parameters, no neurons": ("PReLU",),
}

KINDS = {name: LayerKind(skip=reason) for reason, names in _SKIPS.items() for name in names}
