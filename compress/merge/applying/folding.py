"""The two array operations every merge ends in: fold a relation into input rows, cut channels (numpy only).

A reader of a layer's channels (a consumer's kernel, a recurrent layer's own recurrent kernel) holds
one row per channel on its second-to-last axis, possibly repeated per position (a Conv kernel
``(*k, n, out)``, a Dense after a Flatten ``(positions · n, out)``, channels fastest). Folding
``a[removed] ≈ β a[kept] + shift`` into it is ``W[kept] += βᵀ W[removed]`` at every position, and the
bias takes ``Σ_positions shiftᵀ W[removed]``. Cutting deletes channel indices of one axis at every
position. :func:`weightkit.compress.merge.applying.math.fold_into_kernel`,
:func:`weightkit.compress.merge.applying.input_rows.fold_input_rows` and
:meth:`weightkit.compress.merge.applying.rebuild.WeightState.apply_cuts` are these two functions.
"""

import numpy as np

__all__ = ["cut_channels", "fold_rows"]


def fold_rows(kernel, relation, *, channels, offset=0):
    """Fold ``relation`` into the input rows of ``kernel`` (its rows not yet cut).

    Parameters
    ----------
    kernel : ndarray of shape (..., positions · channels, out) or (*k, channels, out)
        Input channels on the second-to-last axis, fastest within each position block.
    relation : weightkit.compress.merge.applying.math.Relation
        In the producer's channel indices (``0 .. relation.n``).
    channels : int
        Input channels of the tensor read (several producers' side by side).
    offset : int, default=0
        Where the producer's channels start in that tensor.

    Returns
    -------
    kernel : ndarray of the input's shape, float32
        Kept rows updated; the removed rows unchanged (a cut deletes them).
    bias_offset : ndarray of shape (out,), float64
        What the consumer's bias gains.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    removed, kept = offset + relation.removed, offset + relation.kept
    view = kernel.reshape(-1, channels, kernel.shape[-1]).copy()
    removed_part = view[:, removed, :]  # (positions, n_removed, out)
    view[:, kept, :] += np.einsum("rk,sro->sko", relation.beta, removed_part)
    return view.reshape(kernel.shape).astype(np.float32), np.einsum("r,sro->o", relation.shift, removed_part)


def cut_channels(array, axis, width, indices):
    """Delete channel ``indices`` of ``axis``, which holds ``positions · width`` entries (channels fastest).

    Parameters
    ----------
    array : ndarray
    axis : int
    width : int
        Channels on that axis per position.
    indices : iterable of int

    Returns
    -------
    ndarray
        ``axis`` shrunk to ``positions · (width − len(indices))``.
    """
    moved = np.moveaxis(array, axis, 0)
    blocks = moved.reshape((-1, width) + moved.shape[1:])
    kept = np.setdiff1d(np.arange(width), sorted(indices))
    moved = blocks[:, kept].reshape((-1,) + moved.shape[1:])
    return np.moveaxis(moved, 0, axis)
