"""Carry a relation through one step between producers and consumers: one rule for plain sites and groups.

A weight-based merge knows ``z[removed] ≈ β z[kept]`` on a producer's pre-activations; its consumers read
the tensor after the steps on the way. :func:`carry_step` moves the relation through one step: a
BatchNormalization (per-channel affine map), an element-wise activation, a max pooling, a zero padding;
other steps (identity, dropout, average pooling, Flatten) leave it as it is. Rows that cannot pass
come back with the reason. An offset passes a nonlinearity or a zero padding only when it is below
:data:`SHIFT_TOLERANCE` times the *reference*: the largest normalization offset met on the way (at least
1), the scale of the values the channels carry.
"""

import numpy as np

from weightkit.compress.merge.applying.math import Relation, propagate_affine, propagate_elementwise

__all__ = ["SHIFT_TOLERANCE", "carry_step"]

#: An offset below this (times the reference) is float noise: it passes a nonlinearity or a zero padding.
SHIFT_TOLERANCE = 1e-5


def carry_step(relation, step, *, affine=None, twin_tolerance=0.05, reference=1.0):
    """Carry ``relation`` through one step.

    Parameters
    ----------
    relation : weightkit.compress.merge.applying.math.Relation
    step : weightkit.compress.merge.planning.plan.Step
        Its ``kind`` (``affine``, ``activation``, ``max``, ``zero_pad``; any other passes), ``layer`` and,
        for an activation, ``description``, ``function`` and ``homogeneous``.
    affine : (ndarray, ndarray), default=None
        For ``affine``: ``(scale, offset)``, each of shape (n,), in the relation's channel indices.
    twin_tolerance : float, default=0.05
    reference : float, default=1.0
        The largest normalization offset met so far (at least 1).

    Returns
    -------
    relation : Relation
        Every row carried (a row that cannot pass is carried as well as it can be).
    bad : list of (int, str)
        Rows (positions in ``relation.removed``) that cannot pass, with the reason.
    reference : float
        Updated by a normalization's offsets.
    """
    bad = []
    if step.kind == "affine":
        scale, offset = affine
        reference = max(reference, float(np.abs(offset).max(initial=0.0)))
        relation, bad = propagate_affine(relation, scale, offset)
    elif step.kind == "activation" and step.description != "linear":
        relation, bad = propagate_elementwise(relation, step.function, step.homogeneous,
                                              twin_tolerance=twin_tolerance, shift_tolerance=SHIFT_TOLERANCE,
                                              reference=reference)
    elif step.kind == "max":  # max(a·x + c) = a·max(x) + c for a > 0
        shifts = relation.shift.copy()
        relation = Relation(relation.removed, relation.kept, relation.beta, np.zeros_like(shifts))
        relation, bad = propagate_elementwise(relation, None, True, twin_tolerance=twin_tolerance)
        relation.shift[:] = shifts
    elif step.kind == "zero_pad":
        limit = SHIFT_TOLERANCE * reference
        bad = [(int(r), f"an offset of {relation.shift[r]:.3g} cannot pass {step.layer} (zero padding)")
               for r in np.flatnonzero(np.abs(relation.shift) > limit)]
    return relation, bad, reference
