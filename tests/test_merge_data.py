"""The numpy core of data-aware merging: least-squares reconstruction from kept neurons."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.merge.fitting.data_fit import DataMergePlan, fold_into_rows, plan_data_merge


def _relu_layer(rng, n_samples=400, n_inputs=12, n_neurons=10):
    x = rng.normal(size=(n_samples, n_inputs))
    return np.maximum(x @ rng.normal(size=(n_inputs, n_neurons)) + rng.normal(size=n_neurons), 0.0)


def test_exact_linear_combination_is_recovered(rng):
    base = rng.normal(size=(300, 4))
    combo = 0.7 * base[:, 1] - 1.5 * base[:, 3] + 2.0
    a = np.column_stack([base[:, :2], combo, base[:, 2:]])  # neuron 2 = 0.7 a1 - 1.5 a4 + 2
    plan = plan_data_merge(a, n_remove=1, ridge=0.0)
    # Any of neurons 1, 2, 4 is an exact combination of the others; all cost zero. Check that
    # the chosen one is rebuilt exactly, whichever it is.
    assert plan.remove.tolist()[0] in (1, 2, 4)
    np.testing.assert_allclose(plan.reconstruct(a)[:, 0], a[:, plan.remove[0]], atol=1e-10)
    np.testing.assert_allclose(plan.r2, [1.0], atol=1e-12)


def test_coefficients_of_a_planted_combination(rng):
    base = rng.normal(size=(300, 3))
    a = np.column_stack([base, 2.0 * base[:, 0] + 0.5 * base[:, 2] - 1.0])
    # Weight the consumer so that only neuron 3 is cheap to lose: the others feed big weights.
    weights = np.diag([10.0, 10.0, 10.0, 1.0])
    plan = plan_data_merge(a, n_remove=1, output_weights=weights)
    assert plan.remove.tolist() == [3]
    assert plan.keep.tolist() == [0, 1, 2]
    # Ridge 1e-6 relative to unit variances shrinks β by about 1e-6.
    np.testing.assert_allclose(plan.beta, [[2.0, 0.0, 0.5]], atol=1e-5)
    np.testing.assert_allclose(plan.intercept, [-1.0], atol=1e-5)


def test_dead_neurons_get_zero_beta_and_their_constant(rng):
    a = _relu_layer(rng)
    a[:, 3] = 0.0  # a ReLU that never fires
    a[:, 7] = 1.25  # a saturated unit: constant, not zero
    plan = plan_data_merge(a, n_remove=2)
    assert plan.dead.tolist() == [3, 7]
    assert plan.remove.tolist() == [3, 7]
    assert plan.order.tolist() == [3, 7]
    assert np.all(plan.beta == 0.0)
    np.testing.assert_array_equal(plan.intercept, [0.0, 1.25])
    np.testing.assert_array_equal(plan.r2, [1.0, 1.0])
    assert plan.error == 0.0


def test_dead_neurons_are_removed_before_any_live_one(rng):
    a = _relu_layer(rng)
    a[:, [1, 5]] = 0.0
    plan = plan_data_merge(a, n_remove=4)
    assert plan.order[:2].tolist() == [1, 5]
    assert set(plan.order[2:].tolist()).isdisjoint({1, 5})


def test_fold_into_rows_reproduces_the_consumer(rng):
    a = _relu_layer(rng, n_neurons=8)
    a = np.column_stack([a, a[:, 0] + 3 * a[:, 2], np.zeros(len(a))])  # 8 = combo, 9 = dead
    consumer, bias = rng.normal(size=(10, 5)), rng.normal(size=5)
    plan = plan_data_merge(a, n_remove=2, output_weights=consumer, ridge=0.0)
    # The dead neuron goes first, at no cost; then one of 0, 2, 8, which rebuild each other exactly
    # (a8 = a0 + 3 a2), so each costs zero up to rounding and rounding picks among them.
    assert plan.order[0] == 9 and plan.order[1] in (0, 2, 8)
    rows, new_bias = fold_into_rows(plan, consumer, bias)
    assert rows.shape == (8, 5)
    # Exact relation: the folded consumer computes the same outputs (float64 rounding only).
    np.testing.assert_allclose(a[:, plan.keep] @ rows + new_bias, a @ consumer + bias, atol=1e-9)


def test_ridge_keeps_duplicate_regressors_stable(rng):
    base = rng.normal(size=(200, 3))
    a = np.column_stack([base[:, 0], base[:, 0], base[:, 0], base[:, 1], base[:, 2]])  # three copies
    plan = plan_data_merge(a, n_remove=2, ridge=1e-3)
    assert np.isfinite(plan.beta).all()
    assert np.abs(plan.beta).max() < 2.0  # no huge opposite-sign coefficients on the copies
    # Two of the three copies go (which two is a tie broken by rounding); each is rebuilt from the
    # kept copy alone, with β shrunk by about the ridge (1e-3) and no weight on the other neurons.
    removed = plan.remove.tolist()
    assert len(removed) == 2 and set(removed) < {0, 1, 2}
    kept_copy = plan.keep.tolist().index(({0, 1, 2} - set(removed)).pop())
    np.testing.assert_allclose(plan.beta[:, kept_copy], 1.0, atol=2e-3)
    np.testing.assert_allclose(np.delete(plan.beta, kept_copy, axis=1), 0.0, atol=1e-3)
    np.testing.assert_allclose(plan.r2, 1.0, atol=1e-5)
    # Without ridge the covariance of the kept copies is singular; the pseudo-inverse copes.
    assert np.isfinite(plan_data_merge(a, n_remove=1, ridge=0.0).beta).all()


def test_ridge_shrinks_towards_zero(rng):
    base = rng.normal(size=(200, 3))
    a = np.column_stack([base, base @ [1.0, 1.0, 1.0] + 0.1 * rng.normal(size=200)])
    weights = np.diag([10.0, 10.0, 10.0, 1.0])
    small = plan_data_merge(a, n_remove=1, output_weights=weights, ridge=1e-6)
    big = plan_data_merge(a, n_remove=1, output_weights=weights, ridge=10.0)
    assert np.abs(big.beta).sum() < 0.5 * np.abs(small.beta).sum()
    assert big.r2[0] < small.r2[0]


def test_plan_is_deterministic(rng):
    a = _relu_layer(rng, n_neurons=30)
    first = plan_data_merge(a, ratio=0.5)
    second = plan_data_merge(a.copy(), ratio=0.5)
    for name in ("keep", "remove", "order", "beta", "intercept", "r2"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


@pytest.mark.parametrize("ratio, expected", [(0.0, 0), (0.3, 6), (0.5, 10), (0.8, 16), (0.99, 19)])
def test_ratio_removes_the_requested_count(rng, ratio, expected):
    plan = plan_data_merge(_relu_layer(rng, n_neurons=20), ratio=ratio)
    assert plan.n_removed == expected
    assert plan.keep.size + plan.remove.size == 20
    assert np.intersect1d(plan.keep, plan.remove).size == 0
    assert plan.beta.shape == (expected, 20 - expected)


def test_greedy_cost_is_the_true_error(rng):
    # The plan's error is the fraction of tr(Wᵀ C W) the folded consumer loses on the sample.
    a = _relu_layer(rng, n_neurons=16)
    consumer = rng.normal(size=(16, 4))
    plan = plan_data_merge(a, ratio=0.5, output_weights=consumer, ridge=0.0)
    rows, bias = fold_into_rows(plan, consumer)
    z, approx = a @ consumer, a[:, plan.keep] @ rows + bias
    centered = z - z.mean(axis=0)
    lost = ((z - approx) ** 2).sum() / (centered ** 2).sum()
    np.testing.assert_allclose(plan.error, lost, rtol=1e-6)


def test_max_error_stops_at_the_budget(rng):
    a = _relu_layer(rng, n_neurons=20)
    loose, tight = plan_data_merge(a, max_error=0.5), plan_data_merge(a, max_error=0.05)
    assert loose.error <= 0.5 and tight.error <= 0.05
    assert loose.n_removed > tight.n_removed
    # The next removal would have crossed the budget: n_remove one more exceeds it.
    over = plan_data_merge(a, n_remove=tight.n_removed + 1)
    assert over.error > 0.05
    assert plan_data_merge(a, max_error=0.0).n_removed == 0


def test_greedy_beats_removing_by_index(rng):
    a = _relu_layer(rng, n_neurons=20)
    plan = plan_data_merge(a, n_remove=10)
    centered = a - a.mean(axis=0)
    kept = np.arange(10, 20)
    coef, *_ = np.linalg.lstsq(centered[:, kept], centered[:, :10], rcond=None)
    naive = ((centered[:, :10] - centered[:, kept] @ coef) ** 2).sum() / (centered ** 2).sum()
    assert plan.error < naive


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_neurons=st.integers(2, 12), n_remove=st.integers(0, 11))
def test_plan_invariants(seed, n_neurons, n_remove):
    n_remove = min(n_remove, n_neurons - 1)
    a = _relu_layer(np.random.default_rng(seed), n_samples=50, n_neurons=n_neurons)
    plan = plan_data_merge(a, n_remove=n_remove)
    assert isinstance(plan, DataMergePlan)
    assert sorted(plan.keep.tolist() + plan.remove.tolist()) == list(range(n_neurons))
    assert sorted(plan.order.tolist()) == plan.remove.tolist()
    assert np.all(plan.r2 <= 1.0 + 1e-9)
    assert 0.0 <= plan.error <= 1.0 + 1e-9


@pytest.mark.parametrize("kwargs, message", [
    ({}, "Give exactly one of ratio, max_error or n_remove, got 0 (ratio=None, max_error=None, n_remove=None)."),
    ({"ratio": 0.5, "max_error": 0.1},
     "Give exactly one of ratio, max_error or n_remove, got 2 (ratio=0.5, max_error=0.1, n_remove=None)."),
    ({"ratio": 1.0}, "--ratio must be in [0, 1), got 1.0; 0.5 removes half of each layer."),
    ({"max_error": 2.0},
     "--max-error must be in [0, 1] (fraction of the consumer's input variance lost), got 2.0."),
    ({"n_remove": 5}, "n_remove must be in [0, 4], got 5."),
    ({"ratio": 0.5, "ridge": -1.0}, "ridge must be non-negative, got -1.0."),
    ({"ratio": 0.5, "output_weights": np.ones((4, 2))}, "Expected output_weights of shape (5, n_outputs), got (4, 2)."),
])
def test_bad_options_are_one_clear_line(rng, kwargs, message):
    with pytest.raises(WeightkitError) as error:
        plan_data_merge(rng.normal(size=(20, 5)), **kwargs)
    assert str(error.value) == message


@pytest.mark.parametrize("activations, message", [
    (np.zeros(5), "Expected activations as a 2-D array of shape (n_samples, n_neurons), got 1-D array of "
                  "shape (5,) instead."),
    (np.zeros((1, 4)), "Expected activations of at least 2 samples and 2 neurons, got shape (1, 4); give "
                       "more calibration samples."),
    (np.full((3, 3), np.nan), "activations contain NaN or Inf; check the model and the calibration data."),
])
def test_bad_activations_are_refused(activations, message):
    with pytest.raises(WeightkitError) as error:
        plan_data_merge(activations, ratio=0.5)
    assert str(error.value) == message


def test_fold_into_rows_checks_the_shape(rng):
    plan = plan_data_merge(_relu_layer(rng, n_neurons=6), n_remove=2)
    with pytest.raises(WeightkitError) as error:
        fold_into_rows(plan, np.ones((5, 3)))
    assert str(error.value) == "Expected consumer rows of shape (6, n_outputs), got (5, 3)."
