"""Flatten and Reshape: channels and positions regrouped."""

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["KINDS"]

KINDS = {"Flatten": LayerKind(family="step", merge="flatten"), "Reshape": LayerKind(family="step", merge="reshape")}
