"""Normalization layers: BatchNormalization (a per-channel affine map a group passes through) and the others."""

from weightkit.analysis.kinds.base import LayerKind, value_of

__all__ = ["BatchNormalizationKind", "KINDS", "normalized_axis"]


def normalized_axis(layer):
    """The one axis a normalization layer normalizes, or None when it normalizes several."""
    return layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)


class BatchNormalizationKind(LayerKind):
    """Per-channel scale and shift at inference: a merged channel's statistics go with it."""

    family = "weights"
    skip = "normalization layer: per-channel scale and shift, no neurons"
    merge = "affine"
    moving_statistics = True

    def chain_role(self, config):
        return "affine"

    def chain_step(self, layer):
        return ("batchnorm", value_of(layer.gamma), value_of(layer.beta), value_of(layer.moving_mean),
                value_of(layer.moving_variance), layer.epsilon)

    def step_problem(self, layer, rank):
        problem = super().step_problem(layer, rank)
        if problem is None and normalized_axis(layer) not in (-1, rank - 1):
            problem = f"normalizes axis {layer.axis}, not the channels"
        return problem


KINDS = {
    "BatchNormalization": BatchNormalizationKind(),
    "GroupNormalization": LayerKind(skip="normalization layer: per-channel scale and shift, no neurons"),
    "LayerNormalization": LayerKind(skip="normalization layer: per-feature scale and shift, no neurons",
                                    same_shape=True),
}
