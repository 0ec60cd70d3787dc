"""Flatten and Reshape: channels and positions regrouped."""

import math

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["FlattenKind", "KINDS", "ReshapeKind"]


class FlattenKind(LayerKind):
    """Flatten: every axis after the batch into one."""

    family = "step"
    merge = "flatten"

    def output_shape(self, config, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else math.prod(rest))


class ReshapeKind(LayerKind):
    """Reshape: to its ``target_shape`` (unknown here when it holds a -1)."""

    family = "step"
    merge = "reshape"

    def output_shape(self, config, input_shape):
        target = config.get("target_shape")
        return (input_shape[0],) + tuple(target) if isinstance(target, (list, tuple)) and -1 not in target else None


KINDS = {"Flatten": FlattenKind(), "Reshape": ReshapeKind()}
