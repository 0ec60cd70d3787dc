"""Numpy core of neuron merging: fold coefficients, keeper choice, relations and kernel folding.

Nothing here knows about Keras. A layer's neurons are rows ``(n_neurons, fan_in + 1)`` (incoming
weights with the bias as last column). Merging neuron ``j`` into ``k`` relies on the *relation*
``out_j ≈ Σ_k β[j, k] · out_k + shift[j]`` between the layer's output channels; the consumer then
absorbs ``j``'s outgoing weights: ``W_next[k] += β[j, k] · W_next[j]`` and
``b_next += shift[j] · W_next[j]``. Weight-based merging produces one-entry rows of β (``α``);
a data-aware merge can produce dense ones, and :func:`fold_into_kernel` takes either.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.compress.merge.applying.folding import cut_channels, fold_rows
from weightkit.compress.merge.planning.pair_rule import allowed_pairs

__all__ = [
    "REQUIREMENTS",
    "Merge",
    "Relation",
    "choose_keeper",
    "cosine_matrix",
    "fold_coefficient",
    "fold_into_kernel",
    "greedy_merges",
    "group_merges",
    "pair_allowed",
    "pair_residual",
    "propagate_affine",
    "propagate_elementwise",
    "relation_from_merges",
]

#: What the chain between a layer and its consumer allows for a pair (j, k):
#: ``linear`` (no nonlinearity: any α), ``positive`` (positively homogeneous: α > 0),
#: ``twin`` (other activations: w_j ≈ w_k, α ≈ 1).
REQUIREMENTS = ("linear", "positive", "twin")

_TINY = 1e-30


@dataclass
class Merge:
    """Neuron ``removed`` folded into ``keeper`` with ``out_removed ≈ alpha · out_keeper``.

    Attributes
    ----------
    removed, keeper : int
        Neuron indices in the layer before merging.
    alpha : float
        Least-squares scale over the row including the bias.
    residual : float
        ``‖e_removed − α e_keeper‖ / ‖e_removed‖``: 0 for an exact scaled copy.
    """

    removed: int
    keeper: int
    alpha: float
    residual: float

    def exact(self, tolerance=1e-4):
        return bool(self.residual <= tolerance)


@dataclass
class Relation:
    """``out[removed] ≈ beta @ out[kept] + shift`` between one layer's output channels.

    Attributes
    ----------
    removed : ndarray of shape (n_removed,), int
        Channels to delete, sorted.
    kept : ndarray of shape (n_kept,), int
        The remaining channels, sorted; ``removed`` and ``kept`` partition ``range(n)``.
    beta : ndarray of shape (n_removed, n_kept), float64
    shift : ndarray of shape (n_removed,), float64
    """

    removed: np.ndarray
    kept: np.ndarray
    beta: np.ndarray
    shift: np.ndarray

    @classmethod
    def prune(cls, n, removed):
        """Drop ``removed`` with no compensation (β = 0, shift = 0): plain neuron pruning."""
        removed = np.unique(np.asarray(removed, dtype=np.int64))
        kept = np.setdiff1d(np.arange(n), removed)
        return cls(removed, kept, np.zeros((removed.size, kept.size)), np.zeros(removed.size))

    @property
    def n(self):
        return int(self.removed.size + self.kept.size)

    def without(self, rows):
        """The relation with the removed channels at positions ``rows`` kept instead."""
        rows = np.asarray(sorted({int(r) for r in rows}), dtype=np.int64)
        if rows.size == 0:
            return self
        back = self.removed[rows]
        removed = np.delete(self.removed, rows)
        keep_rows = np.delete(np.arange(self.removed.size), rows)
        kept = np.union1d(self.kept, back)
        beta = np.zeros((removed.size, kept.size))
        beta[:, np.searchsorted(kept, self.kept)] = self.beta[keep_rows]
        return Relation(removed, kept, beta, self.shift[keep_rows].copy())


def cosine_matrix(rows):
    """Uncentered cosine similarity between rows, shape (n, n), float64; zero rows give 0."""
    rows = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1)
    unit = rows / np.maximum(norms, _TINY)[:, None]
    unit[norms <= _TINY] = 0.0
    cosine = np.clip(unit @ unit.T, -1.0, 1.0)
    np.fill_diagonal(cosine, 1.0)
    return cosine


def fold_coefficient(row_removed, row_keeper):
    """Least-squares ``α`` minimizing ``‖w_j − α w_k‖``: ``⟨w_j, w_k⟩ / ⟨w_k, w_k⟩``.

    Parameters
    ----------
    row_removed, row_keeper : ndarray of shape (fan_in + 1,)
        Rows including the bias.

    Returns
    -------
    alpha : float
        0 when the keeper's row is zero.
    """
    a = np.asarray(row_removed, dtype=np.float64)
    b = np.asarray(row_keeper, dtype=np.float64)
    denominator = float(b @ b)
    return 0.0 if denominator <= _TINY else float(a @ b) / denominator


def pair_residual(row_removed, row_keeper, alpha):
    """``‖w_j − α w_k‖ / ‖w_j‖`` (0 for a zero row)."""
    a = np.asarray(row_removed, dtype=np.float64)
    norm = float(np.linalg.norm(a))
    if norm <= _TINY:
        return 0.0
    return float(np.linalg.norm(a - alpha * np.asarray(row_keeper, dtype=np.float64))) / norm


def pair_allowed(row_removed, row_keeper, requirement, twin_tolerance=0.05):
    """Whether merging ``j`` into ``k`` is allowed by the chain's rule, and why not.

    Parameters
    ----------
    row_removed, row_keeper : ndarray of shape (fan_in + 1,)
    requirement : {"linear", "positive", "twin"}
    twin_tolerance : float, default=0.05
        For ``twin``: ``‖w_j − w_k‖ ≤ twin_tolerance · ‖w_k‖``.

    Returns
    -------
    merge : Merge or None
    reason : str or None
        Why the pair is refused (None when allowed).
    """
    alpha = fold_coefficient(row_removed, row_keeper)
    residual = pair_residual(row_removed, row_keeper, alpha)
    if requirement == "linear":
        if alpha == 0.0:
            return None, "the keeper's weights are all zero"
        return Merge(-1, -1, alpha, residual), None
    if requirement == "positive":
        if alpha <= 0.0:
            return None, f"α = {alpha:.3g} is not positive, which the activation needs"
        return Merge(-1, -1, alpha, residual), None
    if requirement == "twin":
        keeper = np.asarray(row_keeper, dtype=np.float64)
        distance = float(np.linalg.norm(np.asarray(row_removed, dtype=np.float64) - keeper))
        scale = float(np.linalg.norm(keeper))
        if distance > twin_tolerance * scale:
            return None, (f"not twins (α = {alpha:.3g}, ‖w_j − w_k‖ / ‖w_k‖ = {distance / max(scale, _TINY):.3g} "
                          f"> {twin_tolerance:g}) and the activation is not positively homogeneous")
        return Merge(-1, -1, 1.0, distance / max(float(np.linalg.norm(row_removed)), _TINY)), None
    raise ValueError(f"Invalid value for requirement. Expected one of {list(REQUIREMENTS)}. "
                     f"Received: requirement={requirement!r}.")


def choose_keeper(rows, group):
    """The member whose scaled copies explain the others best (least total squared residual).

    Parameters
    ----------
    rows : ndarray of shape (n_neurons, fan_in + 1)
    group : sequence of int

    Returns
    -------
    keeper : int
    """
    members = np.asarray(group, dtype=np.int64)
    block = np.asarray(rows, dtype=np.float64)[members]
    gram = block @ block.T
    norms = np.diag(gram)
    # Residual of j against k: ‖w_j‖² − ⟨w_j, w_k⟩² / ‖w_k‖²; sum over j for each candidate k.
    cost = (norms[:, None] - gram ** 2 / np.maximum(norms[None, :], _TINY)).sum(axis=0)
    cost[norms <= _TINY] = np.inf
    return int(members[int(np.argmin(cost))])


def group_merges(rows, groups, requirement, twin_tolerance=0.05):
    """Merges for every group found at a threshold.

    Parameters
    ----------
    rows : ndarray of shape (n_neurons, fan_in + 1)
    groups : list of list of int
    requirement : {"linear", "positive", "twin"}
    twin_tolerance : float, default=0.05

    Returns
    -------
    merges : list of Merge
    refused : list of (int, int, str)
        ``(neuron, keeper, reason)`` for members left alone.
    """
    merges, refused = [], []
    for group in groups:
        keeper = choose_keeper(rows, group)
        for member in group:
            if member == keeper:
                continue
            merge, reason = pair_allowed(rows[member], rows[keeper], requirement, twin_tolerance)
            if merge is None:
                refused.append((int(member), keeper, reason))
            else:
                merges.append(Merge(int(member), keeper, merge.alpha, merge.residual))
    return merges, refused


def greedy_merges(rows, similarity, count, requirement, *, higher_is_similar=True, twin_tolerance=0.05):
    """Remove ``count`` neurons by merging the most similar remaining pairs first.

    In each pair the neuron with the smaller row norm is folded into the other (its residual
    ``‖w_j‖ sin θ`` is the smaller one). A neuron already removed takes no part in later pairs;
    its keeper may itself be folded later, and :func:`relation_from_merges` follows such chains.

    Parameters
    ----------
    rows : ndarray of shape (n_neurons, fan_in + 1)
    similarity : ndarray of shape (n_neurons, n_neurons)
        Pearson or cosine (higher is more similar) or MAD (``higher_is_similar=False``).
    count : int
        Neurons to remove.
    requirement : {"linear", "positive", "twin"}

    Returns
    -------
    merges : list of Merge
        In the order they were made; fewer than ``count`` when too few pairs are allowed.
    refused : int
        Pairs examined and refused by the rule.
    """
    rows = np.asarray(rows, dtype=np.float64)
    n = rows.shape[0]
    count = int(min(count, n - 1))
    if count <= 0:
        return [], 0
    norms = np.linalg.norm(rows, axis=1)
    i, j = np.triu_indices(n, 1)
    allowed = allowed_pairs(rows, requirement, twin_tolerance)
    keep = allowed[i, j] | allowed[j, i]
    refused = int((~keep).sum())
    i, j = i[keep], j[keep]
    values = np.asarray(similarity, dtype=np.float64)[i, j]
    order = np.argsort(-values if higher_is_similar else values, kind="stable")
    removed = np.zeros(n, dtype=bool)
    merges = []
    for index in order:
        a, b = int(i[index]), int(j[index])
        if removed[a] or removed[b]:
            continue
        small, large = (a, b) if norms[a] < norms[b] or (norms[a] == norms[b] and a > b) else (b, a)
        merge, _ = pair_allowed(rows[small], rows[large], requirement, twin_tolerance)
        if merge is None:
            refused += 1
            continue
        merges.append(Merge(small, large, merge.alpha, merge.residual))
        removed[small] = True
        if len(merges) == count:
            break
    return merges, refused


def relation_from_merges(n, merges):
    """The relation ``out[removed] = β out[kept]`` of a list of merges, chains resolved.

    Parameters
    ----------
    n : int
        Neurons in the layer.
    merges : list of Merge
        A keeper may be removed by a later merge; ``removed`` indices are distinct.

    Returns
    -------
    Relation
    """
    target = {m.removed: (m.keeper, m.alpha) for m in merges}
    if len(target) != len(merges):
        raise ValueError("each neuron can be removed only once")
    removed = np.array(sorted(target), dtype=np.int64)
    kept = np.setdiff1d(np.arange(n), removed)
    beta = np.zeros((removed.size, kept.size))
    position = {int(k): p for p, k in enumerate(kept)}
    for row, j in enumerate(removed):
        scale, node, steps = 1.0, int(j), 0
        while node in target:
            node, alpha = target[node]
            scale *= alpha
            steps += 1
            if steps > n:
                raise ValueError("merges form a cycle")
        beta[row, position[node]] = scale
    return Relation(removed, kept, beta, np.zeros(removed.size))


def propagate_affine(relation, scale, offset):
    """Carry a relation through a per-channel affine map ``y_c = scale_c · x_c + offset_c``.

    Parameters
    ----------
    relation : Relation
    scale, offset : ndarray of shape (n,)
        Indexed by the layer's original channels (BatchNormalization: ``γ / √(var + ε)`` and
        ``β − mean · scale``).

    Returns
    -------
    relation : Relation
    bad_rows : list of (int, str)
        Rows (positions in ``relation.removed``) that cannot be carried, with the reason.
    """
    scale = np.asarray(scale, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    s_removed, s_kept = scale[relation.removed], scale[relation.kept]
    used = np.abs(relation.beta) > 0
    dead_keepers = used & (np.abs(s_kept) <= _TINY)[None, :]
    bad = [(int(r), "its keeper's normalization scale is zero") for r in np.flatnonzero(dead_keepers.any(axis=1))]
    safe = np.where(np.abs(s_kept) <= _TINY, 1.0, s_kept)
    beta = relation.beta * s_removed[:, None] / safe[None, :]
    shift = s_removed * relation.shift + offset[relation.removed] - beta @ offset[relation.kept]
    return Relation(relation.removed, relation.kept, beta, shift), bad


def propagate_elementwise(relation, function, homogeneous, *, twin_tolerance=0.05, shift_tolerance=1e-6,
                          reference=1.0):
    """Carry a relation through an elementwise function ``f`` (an activation or a max pooling).

    A row with β = 0 is a constant and becomes ``f(shift)`` (a dead neuron folds exactly). A row
    with one positive β and no shift passes a positively homogeneous ``f`` unchanged. Otherwise a
    row with one β ≈ 1 and no shift is treated as a twin (β becomes 1, approximately). Anything
    else cannot be carried.

    Parameters
    ----------
    relation : Relation
    function : callable or None
        ``f`` on a float64 ndarray (for constant rows); None for a max pooling (f(c) = c).
    homogeneous : bool
        ``f(a·x) = a·f(x)`` for ``a > 0``.
    twin_tolerance : float, default=0.05
    shift_tolerance : float, default=1e-6
        Relative to ``reference`` (the typical size of the channels' values).

    Returns
    -------
    relation : Relation
    bad_rows : list of (int, str)
    """
    beta = relation.beta.copy()
    shift = relation.shift.copy()
    bad = []
    limit = shift_tolerance * max(float(reference), _TINY)
    for row in range(beta.shape[0]):
        nonzero = np.flatnonzero(np.abs(beta[row]) > 0)
        if nonzero.size == 0:
            shift[row] = shift[row] if function is None else float(function(np.array([shift[row]]))[0])
            continue
        value = beta[row, nonzero[0]] if nonzero.size == 1 else None
        if value is not None and abs(shift[row]) <= limit:
            if homogeneous and value > 0:
                shift[row] = 0.0
                continue
            if abs(value - 1.0) <= twin_tolerance:
                beta[row, nonzero[0]] = 1.0
                shift[row] = 0.0
                continue
        if nonzero.size > 1:
            reason = "a combination of several neurons cannot pass a nonlinearity"
        elif abs(shift[row]) > limit:
            reason = f"an offset of {shift[row]:.3g} (from a normalization) cannot pass a nonlinearity"
        else:
            reason = f"α = {value:.3g} cannot pass a nonlinearity that is not positively homogeneous"
        bad.append((row, reason))
    return Relation(relation.removed, relation.kept, beta, shift), bad


def fold_into_kernel(kernel, bias, relation, *, layout="dense", positions=1):
    """Fold a relation into the consumer's kernel and bias and delete the removed inputs.

    ``W[kept] += βᵀ W[removed]`` on the input-channel axis, ``b += Σ_positions shiftᵀ W[removed]``.

    Parameters
    ----------
    kernel : ndarray
        ``dense``: (n_channels, out). ``conv``: (*kernel_size, n_channels, out).
        ``flatten``: (positions · n_channels, out), the Dense after a channels-last Flatten.
    bias : ndarray of shape (out,) or None
        None is treated as zeros; the result always has a bias.
    relation : Relation
    layout : {"dense", "conv", "flatten"}, default="dense"
    positions : int, default=1
        For ``flatten``: spatial positions flattened per channel.

    Returns
    -------
    kernel : ndarray, float32
        The input-channel axis shrunk to ``len(relation.kept)``.
    bias : ndarray of shape (out,), float32
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    out, n, k = kernel.shape[-1], relation.n, relation.kept.size
    shapes = {"dense": ((1, n, out), (k, out)), "conv": ((-1, n, out), kernel.shape[:-2] + (k, out)),
              "flatten": ((int(positions), n, out), (int(positions) * k, out))}
    if layout not in shapes:
        raise ValueError(f"Invalid value for layout. Expected one of ['dense', 'conv', 'flatten']. "
                         f"Received: layout={layout!r}.")
    blocks = kernel.reshape(shapes[layout][0])
    if blocks.shape[1] != n:
        raise ValueError(f"kernel has {blocks.shape[1]} input channels, the relation {n}")
    folded, offset = fold_rows(blocks, relation, channels=n)
    bias = np.zeros(out) if bias is None else np.asarray(bias, dtype=np.float64)
    return cut_channels(folded, 1, n, relation.removed).reshape(shapes[layout][1]), (bias + offset).astype(np.float32)
