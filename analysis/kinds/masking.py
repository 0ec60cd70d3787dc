"""Masking: a step that marks the time steps whose features all equal ``mask_value``, for later layers to skip."""

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["KINDS", "MaskingKind"]


class MaskingKind(LayerKind):
    """``keras.layers.Masking``: passes its input on with a mask; no weights, and it stops a merge walk."""

    family = "step"

    def makes_mask(self, layer):
        return True


KINDS = {"Masking": MaskingKind()}
