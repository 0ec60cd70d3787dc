"""Layers that join several tensors: the element-wise ones tie their inputs' channels; Concatenate lays them
side by side."""

import numpy as np

from weightkit.analysis.kinds.base import LayerKind

__all__ = ["AGREE", "JoinKind", "KINDS"]

#: Relative tolerance within which the inputs' scale factors count as the same.
AGREE = 1e-4


class JoinKind(LayerKind):
    """An element-wise join, and how a removed channel's relation passes through it (:meth:`carry`).

    Parameters
    ----------
    combine : {"sum", "product", "select"}
        ``sum``: a sum of its inputs (Add), their difference (Subtract, ``sign=-1``) or mean
        (Average, ``mean=True``); ``product``: Multiply; ``select``: one input per element
        (Maximum, Minimum).
    """

    family = "step"
    merge = "couple"

    def __init__(self, combine, sign=1.0, mean=False):
        super().__init__()
        self.combine, self.sign, self.mean = combine, float(sign), bool(mean)

    @property
    def nonlinear(self):
        """Whether a relation carried through it needs positive (or single-keeper) coefficients."""
        return self.combine != "sum"

    def carry(self, name, betas, shifts):
        """The relation of the output from its inputs' relations ``out[removed] ≈ β out[kept] + shift``.

        Parameters
        ----------
        name : str
            The layer's class name, for the notes.
        betas : ndarray of shape (n_inputs, n_removed, n_kept)
        shifts : ndarray of shape (n_inputs, n_removed)

        Returns
        -------
        beta : ndarray of shape (n_removed, n_kept)
        shift : ndarray of shape (n_removed,)
        notes : list of (int, str, bool)
            ``(row, reason, hard)``: rows merged approximately (``hard`` False) or refused (True).
        """
        agree = np.all(np.abs(betas - betas[0]) <= AGREE * np.maximum(np.abs(betas[0]), 1e-12), axis=(0, 2))
        if self.combine == "sum":
            if self.mean:
                shift = shifts.mean(axis=0)
            elif self.sign < 0:
                shift = shifts[0] - shifts[1]
            else:
                shift = shifts.sum(axis=0)
            notes = [(int(r), "the producers' scale factors differ: the merge is approximate (use --mode data)", False)
                     for r in np.flatnonzero(~agree)]
            return betas.mean(axis=0), shift, notes
        if self.combine == "select":
            same_shift = np.all(np.abs(shifts - shifts[0]) <= 1e-6 * np.maximum(np.abs(shifts[0]), 1.0), axis=0)
            notes = [(int(r), f"{name} of inputs whose relations differ", True)
                     for r in np.flatnonzero(~(agree & same_shift))]
            return betas[0].copy(), shifts[0].copy(), notes
        single = (np.abs(betas) > 0).sum(axis=2).max(axis=0) <= 1  # product: single-keeper rows without shifts
        no_shift = np.all(np.abs(shifts) <= 1e-9, axis=0)
        notes = [(int(r), "Multiply needs one keeper and no offsets", True) for r in np.flatnonzero(~(single & no_shift))]
        return np.prod(betas, axis=0), np.zeros_like(shifts[0]), notes


KINDS = {
    "Add": JoinKind("sum"),
    "Subtract": JoinKind("sum", sign=-1.0),
    "Average": JoinKind("sum", mean=True),
    "Multiply": JoinKind("product"),
    "Maximum": JoinKind("select"),
    "Minimum": JoinKind("select"),
    "Concatenate": LayerKind(family="step", merge="concatenate"),
}
