"""Layers with weights but no neurons weightkit merges: embeddings, preprocessing, PReLU."""

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["KINDS"]

_SKIPS = {
    "embedding table: rows are tokens, not neurons": ("Embedding",),
    "preprocessing layer: stored statistics, no neurons": ("Normalization",),
    "activation parameters, no neurons": ("PReLU",),
}

KINDS = {name: LayerKind(skip=reason) for reason, names in _SKIPS.items() for name in names}
