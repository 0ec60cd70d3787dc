"""Preprocessing layers: Normalization (stored statistics, no neurons) and Rescaling (a fixed affine map).

Neither has neurons nor takes part in a merge; what they know is the range of the inputs a model
that starts with them expects (:meth:`~weightkit.analysis.kinds.LayerKind.input_sampler`), which a
comparison without data draws from (:mod:`weightkit.compress.quantize.sampling`).
"""

import numpy as np

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["KINDS", "NormalizationKind", "RescalingKind"]


class NormalizationKind(LayerKind):
    """``keras.layers.Normalization``: ``(x - mean) / sqrt(variance)`` with adapted statistics."""

    skip = "preprocessing layer: stored statistics, no neurons"

    def input_sampler(self, layer):
        if getattr(layer, "mean", None) is None or layer.invert:
            return None
        mean = np.asarray(layer.mean, np.float32)
        std = np.sqrt(np.asarray(layer.variance, np.float32))
        return (f"normal around the mean and spread of Normalization {layer.name}",
                lambda rng, shape: (mean + std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32))


class RescalingKind(LayerKind):
    """``keras.layers.Rescaling``: ``x * scale + offset``, no weights."""

    family = "step"

    def input_sampler(self, layer):
        scale = float(np.mean(np.asarray(layer.scale, dtype=np.float64)))
        offset = float(np.mean(np.asarray(layer.offset, dtype=np.float64)))
        if scale <= 0:
            return None
        high = (1.0 - min(offset, 0.0)) / scale  # Rescaling(1/255) -> 255; (1/127.5, -1) -> 255
        return (f"uniform in [0, {high:g}), from Rescaling {layer.name}",
                lambda rng, shape: (rng.random(shape, dtype=np.float32) * np.float32(high)))


KINDS = {"Normalization": NormalizationKind(), "Rescaling": RescalingKind()}
