"""Layers that join several tensors: the element-wise ones tie their inputs' channels; Concatenate lays them
side by side."""

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["JoinKind", "KINDS"]


class JoinKind(LayerKind):
    """An element-wise join; ``combine`` says how a removed channel's relations combine through it.

    Attributes
    ----------
    combine : {"sum", "product", "select"}
        ``sum``: a (signed, scaled) sum of its inputs (Add, Subtract, Average); ``product``: Multiply;
        ``select``: one of its inputs per element (Maximum, Minimum).
    sign : float
        The sign of its second input (Subtract: -1).
    scale : str
        ``"mean"`` for Average (the sum divided by the number of inputs), else ``""``.
    """

    family = "step"
    merge = "couple"
    combine = "sum"
    sign = 1.0
    scale = ""

    def __init__(self, combine, sign=1.0, scale=""):
        super().__init__()
        self.combine, self.sign, self.scale = combine, sign, scale

    @property
    def nonlinear(self):
        """Whether a relation carried through it needs positive (or single-keeper) coefficients."""
        return self.combine != "sum"


KINDS = {
    "Add": JoinKind("sum"),
    "Subtract": JoinKind("sum", sign=-1.0),
    "Average": JoinKind("sum", scale="mean"),
    "Multiply": JoinKind("product"),
    "Maximum": JoinKind("select"),
    "Minimum": JoinKind("select"),
    "Concatenate": LayerKind(family="step", merge="concatenate"),
}
