"""The numpy core of merging: coefficients, keeper choice, greedy selection, relations, kernel folding."""

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightkit.compress.merge.applying.carry import carry_step
from weightkit.compress.merge.applying.folding import cut_channels, fold_rows
from weightkit.compress.merge.applying.math import (
    Merge,
    Relation,
    choose_keeper,
    cosine_matrix,
    fold_coefficient,
    fold_into_kernel,
    greedy_merges,
    group_merges,
    pair_allowed,
    propagate_affine,
    propagate_elementwise,
    relation_from_merges,
)


def _relu(x):
    return np.maximum(x, 0.0)


def test_fold_coefficient_is_least_squares(rng):
    a, b = rng.normal(size=7), rng.normal(size=7)
    alpha = fold_coefficient(a, b)
    reference = np.linalg.lstsq(b[:, None], a, rcond=None)[0][0]
    assert alpha == pytest.approx(reference, rel=1e-12)
    assert fold_coefficient(3.0 * b, b) == pytest.approx(3.0)
    assert fold_coefficient(a, np.zeros(7)) == 0.0


@pytest.mark.parametrize("requirement, alpha, allowed", [
    ("positive", 2.0, True), ("positive", -2.0, False), ("linear", -2.0, True),
    ("twin", 2.0, False), ("twin", 1.0, True), ("twin", 1.02, True),
])
def test_pair_allowed_rules(rng, requirement, alpha, allowed):
    keeper = rng.normal(size=9)
    merge, reason = pair_allowed(alpha * keeper, keeper, requirement, twin_tolerance=0.05)
    assert (merge is not None) is allowed
    assert (reason is None) is allowed
    if allowed:
        assert merge.alpha == pytest.approx(1.0 if requirement == "twin" else alpha)


def test_twin_refusal_message():
    merge, reason = pair_allowed(np.array([2.0, 0.0]), np.array([1.0, 0.0]), "twin", 0.05)
    assert merge is None
    assert reason == ("not twins (α = 2, ‖w_j − w_k‖ / ‖w_k‖ = 1 > 0.05) and the activation is not "
                      "positively homogeneous")


def test_choose_keeper_prefers_the_row_explaining_the_others():
    base = np.array([1.0, 2.0, 3.0, 0.5])
    rows = np.stack([base, 2 * base, base + np.array([0.3, -0.2, 0.0, 0.1])])
    # Row 0 and row 1 explain each other exactly; row 2 is closest in direction to base.
    assert choose_keeper(rows, [0, 1, 2]) in (0, 1)
    merges, refused = group_merges(rows, [[0, 1, 2]], "positive")
    assert len(merges) == 2 and refused == []


def test_greedy_removes_exactly_count_smaller_norm_first(rng):
    rows = rng.normal(size=(20, 6))
    similarity = cosine_matrix(rows)
    merges, _ = greedy_merges(rows, similarity, 7, "linear")
    assert len(merges) == 7
    assert len({m.removed for m in merges}) == 7
    norms = np.linalg.norm(rows, axis=1)
    first = merges[0]
    assert norms[first.removed] <= norms[first.keeper]
    i, j = np.triu_indices(20, 1)
    best = np.argmax(similarity[i, j])
    assert {first.removed, first.keeper} == {i[best], j[best]}


def test_relation_follows_chains():
    merges = [Merge(0, 1, 2.0, 0.0), Merge(1, 3, 0.5, 0.0), Merge(2, 3, 4.0, 0.0)]
    relation = relation_from_merges(5, merges)
    assert relation.removed.tolist() == [0, 1, 2]
    assert relation.kept.tolist() == [3, 4]
    np.testing.assert_allclose(relation.beta, [[1.0, 0.0], [0.5, 0.0], [4.0, 0.0]])


def test_relation_without_puts_rows_back():
    relation = relation_from_merges(4, [Merge(0, 2, 2.0, 0.0), Merge(1, 3, 3.0, 0.0)])
    smaller = relation.without([0])
    assert smaller.removed.tolist() == [1]
    assert smaller.kept.tolist() == [0, 2, 3]
    np.testing.assert_allclose(smaller.beta, [[0.0, 0.0, 3.0]])


def test_affine_then_fold_is_exact(rng):
    # z_removed = 2 z_kept, then y = s z + t per channel: the carried relation predicts y exactly.
    z = rng.normal(size=(50, 3))
    z[:, 0] = 2.0 * z[:, 2]
    scale, offset = rng.uniform(0.5, 2.0, 3), rng.normal(size=3)
    relation, bad = propagate_affine(relation_from_merges(3, [Merge(0, 2, 2.0, 0.0)]), scale, offset)
    assert bad == []
    y = z * scale + offset
    np.testing.assert_allclose(y[:, relation.removed], y[:, relation.kept] @ relation.beta.T + relation.shift,
                               atol=1e-12)


def test_elementwise_rules():
    relation = Relation(np.array([0, 1, 2]), np.array([3, 4]), np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]]),
                        np.array([0.0, -0.5, 0.0]))
    carried, bad = propagate_elementwise(relation, _relu, homogeneous=True)
    assert [row for row, _ in bad] == [2]
    assert bad[0][1] == "a combination of several neurons cannot pass a nonlinearity"
    assert carried.shift[1] == 0.0  # relu(-0.5): the constant neuron folds exactly
    _, bad = propagate_elementwise(relation, np.tanh, homogeneous=False)
    assert [row for row, _ in bad] == [0, 2]


@pytest.mark.parametrize("layout, shape, positions", [("dense", (5, 3), 1), ("conv", (3, 3, 5, 3), 1),
                                                       ("flatten", (4 * 5, 3), 4)])
def test_fold_into_kernel_matches_consumer_output(rng, layout, shape, positions):
    # Activations per position (S, C): removed channels are an exact affine function of kept ones.
    relation = Relation(np.array([1, 3]), np.array([0, 2, 4]), rng.normal(size=(2, 3)), rng.normal(size=2))
    kernel, bias = rng.normal(size=shape), rng.normal(size=3)
    spatial = int(np.prod(shape[:-2])) if layout == "conv" else positions
    kept = rng.normal(size=(10, spatial, 3))
    full = np.empty((10, spatial, 5))
    full[..., relation.kept] = kept
    full[..., relation.removed] = kept @ relation.beta.T + relation.shift
    blocks = kernel.reshape(spatial, 5, 3)
    expected = np.einsum("nsc,sco->no", full, blocks) + bias
    new_kernel, new_bias = fold_into_kernel(kernel, bias, relation, layout=layout, positions=positions)
    assert new_kernel.shape[-2 if layout == "conv" else 0] == (3 if layout != "flatten" else 12)
    got = np.einsum("nsc,sco->no", kept, new_kernel.reshape(spatial, 3, 3).astype(np.float64)) + new_bias
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)  # float32 results


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.integers(0, 10_000), st.floats(0.1, 5.0))
def test_scaled_copies_fold_exactly_through_relu(n, seed, alpha):
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, 4))
    rows[0] = alpha * rows[n - 1]
    x = np.concatenate([rng.normal(size=(20, 3)), np.ones((20, 1))], axis=1)  # bias column
    activations = _relu(x @ rows.T)
    merges, _ = group_merges(rows, [[0, n - 1]], "positive")
    relation = relation_from_merges(n, merges)
    consumer, bias = rng.normal(size=(n, 2)), rng.normal(size=2)
    new_kernel, new_bias = fold_into_kernel(consumer, bias, relation)
    np.testing.assert_allclose(activations[:, relation.kept] @ new_kernel + new_bias,
                               activations @ consumer + bias, rtol=1e-4, atol=1e-4)


def test_folding_at_an_offset_of_a_concatenated_input_matches_the_consumer_output(rng):
    # A Conv kernel (3, 9, 2) reads two producers side by side: channels 4..8 are the relation's 0..4.
    relation = Relation(np.array([1, 3]), np.array([0, 2, 4]), rng.normal(size=(2, 3)), rng.normal(size=2))
    kernel = rng.normal(size=(3, 9, 2))
    inputs = rng.normal(size=(10, 3, 9))
    inputs[..., 4 + relation.removed] = inputs[..., 4 + relation.kept] @ relation.beta.T + relation.shift
    expected = np.einsum("nsc,sco->no", inputs, kernel)
    folded, bias = fold_rows(kernel, relation, channels=9, offset=4)
    cut = cut_channels(folded, -2, 9, 4 + relation.removed)
    assert cut.shape == (3, 7, 2) and folded.dtype == np.float32
    kept_inputs = np.delete(inputs, 4 + relation.removed, axis=-1)
    np.testing.assert_allclose(np.einsum("nsc,sco->no", kept_inputs, cut) + bias, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shift, reference, refused", [(5e-6, 1.0, False), (5e-5, 1.0, True), (5e-5, 10.0, False)])
def test_an_offset_passes_a_zero_padding_below_the_one_tolerance(shift, reference, refused):
    # SHIFT_TOLERANCE (1e-5) times the largest normalization offset on the way, for plain sites and groups alike.
    relation = Relation(np.array([1]), np.array([0]), np.array([[2.0]]), np.array([shift]))
    step = SimpleNamespace(kind="zero_pad", layer="pad")
    carried, bad, _ = carry_step(relation, step, reference=reference)
    assert [row for row, _ in bad] == ([0] if refused else [])
    assert carried is relation
