"""find_groups and friends on hand-made matrices: pure numpy, no Keras."""

import numpy as np
import pytest
from scipy.spatial.distance import squareform

from weightkit.analysis import DEFAULT_THRESHOLDS, WeightkitError, find_groups, mad_matrix, pearson_matrix, removable_count
from weightkit.analysis.numeric.groups import absolute_threshold, cluster_linkage, cluster_order, condensed_distance, distance_matrix


def _symmetric(n, pairs, fill):
    """An (n, n) matrix with ``fill`` off the diagonal, ``pairs`` {(i, j): value} set both ways."""
    matrix = np.full((n, n), fill, dtype=np.float64)
    np.fill_diagonal(matrix, 1.0 if fill != 1.0 else 0.0)
    for (i, j), value in pairs.items():
        matrix[i, j] = matrix[j, i] = value
    return matrix


def _correlation(n, pairs):
    return _symmetric(n, pairs, 0.0)


def _mad(n, pairs, fill=1.0):
    matrix = _symmetric(n, pairs, fill)
    np.fill_diagonal(matrix, 0.0)
    return matrix


def test_default_thresholds_are_documented_values():
    assert DEFAULT_THRESHOLDS == {"pearson": 0.9, "mad": 0.2}


@pytest.mark.parametrize("r, grouped", [(0.9, True), (0.9 + 1e-9, True), (0.8999, False), (0.95, True)])
def test_pearson_default_threshold_counts_r_equal_to_it(r, grouped):
    groups = find_groups(_correlation(3, {(0, 2): r}))
    assert groups == ([[0, 2]] if grouped else [])


def test_pearson_threshold_equality_survives_float32_matrix():
    # 0.9 is not exact in float32 (0.89999998): r == threshold as the user sees it must count.
    matrix = _correlation(2, {(0, 1): 0.9}).astype(np.float32)
    assert find_groups(matrix, "pearson", 0.9) == [[0, 1]]


@pytest.mark.parametrize("threshold, expected", [(0.5, [[0, 1, 2]]), (0.75, [[0, 1]]), (0.95, [])])
def test_pearson_explicit_threshold(threshold, expected):
    matrix = _correlation(4, {(0, 1): 0.8, (0, 2): 0.6, (1, 2): 0.7})
    assert find_groups(matrix, "pearson", threshold) == expected


def test_negative_correlation_is_never_redundant():
    matrix = _correlation(3, {(0, 1): -1.0, (1, 2): -0.95})
    assert find_groups(matrix, "pearson") == []
    assert find_groups(matrix, "pearson", 0.1) == []


def test_groups_sorted_inside_and_by_first_index():
    pairs = {(3, 5): 0.99, (4, 0): 0.95, (6, 1): 0.97, (6, 2): 0.96, (1, 2): 0.98}
    assert find_groups(_correlation(7, pairs)) == [[0, 4], [1, 2, 6], [3, 5]]


def test_complete_linkage_needs_every_pair_redundant():
    # 0-1 and 1-2 are redundant but 0-2 is not: a chain is not a group.
    matrix = _correlation(3, {(0, 1): 0.97, (1, 2): 0.95, (0, 2): 0.5})
    assert find_groups(matrix) == [[0, 1]]


def test_mad_threshold_is_a_fraction_of_the_layer_median():
    # Off-diagonal MADs: mostly 1.0 (the median), pair (1, 3) at 0.2, pair (0, 2) at 0.21.
    matrix = _mad(5, {(1, 3): 0.2, (0, 2): 0.21})
    assert float(np.median(matrix[~np.eye(5, dtype=bool)])) == 1.0
    assert absolute_threshold(matrix, "mad") == pytest.approx(0.2)
    assert find_groups(matrix, "mad") == [[1, 3]]
    assert find_groups(matrix, "mad", 0.21) == [[0, 2], [1, 3]]
    # The same matrix in other units gives the same groups: the rule is relative.
    assert find_groups(matrix * 1e-3, "mad") == [[1, 3]]


def test_mad_zero_threshold_groups_exact_duplicates_only():
    rows = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 2.0, 3.5], [0.0, 5.0, 1.0]])
    assert find_groups(mad_matrix(rows), "mad", 0.0) == [[0, 1]]


def test_scaled_copy_is_a_pearson_group_but_not_a_mad_group():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 50))
    rows = np.vstack([base, 3.0 * base[1] + 0.5])  # neuron 4: positively scaled and shifted copy of 1
    assert find_groups(pearson_matrix(rows), "pearson") == [[1, 4]]
    assert find_groups(mad_matrix(rows), "mad") == []


@pytest.mark.parametrize("metric", ["pearson", "mad"])
@pytest.mark.parametrize("n", [0, 1])
def test_fewer_than_two_neurons_have_no_groups(metric, n):
    matrix = np.ones((n, n))
    assert find_groups(matrix, metric) == []
    assert cluster_linkage(matrix, metric).shape == (0, 4)
    assert cluster_order(cluster_linkage(matrix, metric), n).tolist() == list(range(n))


def test_reused_linkage_gives_the_same_groups():
    matrix = _correlation(5, {(0, 3): 0.95, (1, 4): 0.92})
    Z = cluster_linkage(matrix, "pearson")
    assert find_groups(matrix, "pearson", Z=Z) == find_groups(matrix, "pearson") == [[0, 3], [1, 4]]
    order = cluster_order(Z, 5).tolist()
    assert sorted(order) == list(range(5))
    assert abs(order.index(0) - order.index(3)) == 1 and abs(order.index(1) - order.index(4)) == 1


def test_distance_matrix():
    r = _correlation(3, {(0, 1): 0.5, (0, 2): -1.0})
    np.testing.assert_allclose(distance_matrix(r, "pearson"), [[0, 0.5, 2], [0.5, 0, 1], [2, 1, 0]])
    mad = _mad(3, {(0, 1): 0.25})
    np.testing.assert_allclose(distance_matrix(mad, "mad"), mad)


@pytest.mark.parametrize("metric", ["pearson", "mad"])
def test_condensed_distance_is_the_symmetrized_distance_matrix(metric):
    # Built row by row to spare n×n copies; it must be bit-identical to the dense construction, asymmetric
    # float32 input and Pearson values just outside [-1, 1] (rounding) included.
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(23, 23)).astype(np.float32)
    matrix = np.clip(matrix, -1.0000002, 1.0000002) if metric == "pearson" else np.abs(matrix)
    dense = distance_matrix(matrix, metric)
    assert np.array_equal(condensed_distance(matrix, metric), squareform((dense + dense.T) / 2, checks=False))


@pytest.mark.parametrize("groups, expected", [([], 0), ([[0, 1]], 1), ([[0, 4], [1, 2, 6]], 3),
                                              ([[0, 1, 2, 3, 4]], 4)])
def test_removable_count(groups, expected):
    assert removable_count(groups) == expected


def test_unknown_metric_lists_the_allowed_ones():
    with pytest.raises(WeightkitError) as info:
        find_groups(np.eye(2), "cosine")
    assert str(info.value) == "Invalid value for metric. Expected one of ['pearson', 'mad']. Received: metric='cosine'."


@pytest.mark.parametrize("metric, threshold, message", [
    ("pearson", 1.5, "A Pearson threshold must be in [-1, 1], got 1.5; 0.9 is the default."),
    ("pearson", float("nan"), "The pearson threshold must be a finite number, got nan; 0.9 is the default."),
    ("mad", -0.1, "A MAD threshold is a non-negative fraction of the layer's median MAD, got -0.1; "
                  "0.2 is the default."),
    ("mad", float("nan"), "The mad threshold must be a finite number, got nan; 0.2 is the default."),
    ("mad", float("inf"), "The mad threshold must be a finite number, got inf; 0.2 is the default."),
])
def test_bad_thresholds_are_refused(metric, threshold, message):
    with pytest.raises(WeightkitError) as info:
        find_groups(np.eye(3), metric, threshold)
    assert str(info.value) == message


def test_non_square_matrix_is_refused():
    with pytest.raises(WeightkitError) as info:
        find_groups(np.zeros((2, 3)))
    assert str(info.value) == "Expected a square (n, n) matrix, got shape (2, 3)."


@pytest.mark.parametrize("fan_in, threshold", [(9, 0.9), (16, 0.8), (25, 0.7)])
def test_expected_chance_pairs_matches_a_simulation_of_unrelated_rows(fan_in, threshold):
    from weightkit.analysis import pearson_matrix
    from weightkit.analysis.numeric.groups import expected_chance_pairs

    rng = np.random.default_rng(0)
    n, repeats = 64, 40
    upper = np.triu_indices(n, 1)
    counts = [(pearson_matrix(rng.standard_normal((n, fan_in)))[upper] >= threshold).sum() for _ in range(repeats)]
    expected = expected_chance_pairs(n, fan_in, threshold)
    # Poisson-like count: the mean of 40 repeats is within 4 standard errors of the expectation.
    assert abs(np.mean(counts) - expected) <= 4 * np.sqrt(expected / repeats) + 0.05


def test_long_rows_have_no_chance_pairs():
    from weightkit.analysis.numeric.groups import expected_chance_pairs

    assert expected_chance_pairs(256, 256) < 1e-50
    assert expected_chance_pairs(1, 9) == 0.0
