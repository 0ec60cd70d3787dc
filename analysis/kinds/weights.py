"""Layers with weights but no neurons weightkit merges: embeddings, PReLU (preprocessing: :mod:`~.preprocessing`)."""

from weightkit.analysis.kinds.base import LayerKind
from weightkit.analysis.kinds.config_rules import positive_int

__all__ = ["EmbeddingKind", "KINDS"]


class EmbeddingKind(LayerKind):
    """An embedding table: a row per token, not per neuron; it takes token ids below its ``input_dim``."""

    skip = "embedding table: rows are tokens, not neurons"

    def output_shape(self, config, input_shape):
        return input_shape + (config.get("output_dim"),)

    def declared_parameters(self, config, width):
        dims = config.get("input_dim"), config.get("output_dim")
        return dims[0] * dims[1] if all(positive_int(d) for d in dims) else None

    def vocabulary_size(self, layer):
        return int(layer.input_dim)

    def stream_writes(self, layer):
        return [("embeddings", -1)]

    def stream_width_config(self, config, width):
        config["output_dim"] = int(width)
        return config


KINDS = {
    "Embedding": EmbeddingKind(),
    "PReLU": LayerKind(skip="activation parameters, no neurons", same_shape=True),
}
