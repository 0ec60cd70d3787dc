"""Normalization layers: BatchNormalization (a per-channel affine map a group passes through) and the others."""

from weightkit.analysis.kinds.base import LayerKind, value_of

__all__ = ["BatchNormalizationKind", "KINDS", "LayerNormalizationKind", "RMSNormalizationKind", "normalized_axis"]


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


class LayerNormalizationKind(LayerKind):
    """LayerNormalization: ``(x - mean) / sqrt(var + eps) * gamma + beta`` over its axis; a stream's reader."""

    skip = "normalization layer: per-feature scale and shift, no neurons"
    same_shape = True

    def stream_norm_problem(self, layer, rank):
        if normalized_axis(layer) not in (-1, rank - 1):
            return f"normalizes axis {layer.axis}, not the channels alone"
        if getattr(layer, "rms_scaling", False):
            return "rms_scaling=True divides by the centered variance without centering"
        return None

    def stream_norm(self, layer, rank):
        if self.stream_norm_problem(layer, rank) is not None:
            return None
        return ("gamma" if layer.scale else None, "beta" if layer.center else None, True, float(layer.epsilon))


class RMSNormalizationKind(LayerKind):
    """RMSNormalization: ``x / sqrt(mean(x²) + eps) * scale`` over its axis; what a sliced stream's readers use.

    No ``skip`` text of its own: keras-hub's Gemma has a class of the same name (not a subclass), which the file
    reader, reading class names, cannot tell from this one; both are skipped with the generic reason."""

    same_shape = True

    def stream_norm_problem(self, layer, rank):
        return None if normalized_axis(layer) in (-1, rank - 1) else f"normalizes axis {layer.axis}, not the channels alone"

    def stream_norm(self, layer, rank):
        if self.stream_norm_problem(layer, rank) is not None:
            return None
        return "scale", None, False, float(layer.epsilon)


KINDS = {
    "BatchNormalization": BatchNormalizationKind(),
    "GroupNormalization": LayerKind(skip="normalization layer: per-channel scale and shift, no neurons"),
    "LayerNormalization": LayerNormalizationKind(),
    "RMSNormalization": RMSNormalizationKind(),
}
