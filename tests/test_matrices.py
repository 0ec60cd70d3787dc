"""pearson_matrix and mad_matrix: references, both MAD backends, memory, edge cases, properties.

Pure numpy/scipy (and numba): no Keras. Tolerances: the references run in float64 on the same
float32 inputs; ours sum in float32 with float64 totals (MAD: chunks of 512) or multiply float32
unit rows (Pearson), so 1e-5 relative (MAD) and 1e-5 absolute (Pearson, r in [-1, 1]) leave
about ten times the error measured here (up to 2e-7 and 1e-7).
"""

import json
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import cdist

from weightkit.analysis import WeightkitError, mad_matrix, pearson_matrix
from weightkit.analysis.numeric.matrices import DEFAULT_MEMORY_BUDGET, _mad_matrix_blocked, _mad_matrix_numba, mad_backend
from weightkit._common import run_cli
from weightkit.cli import cli

RTOL = 1e-5
BACKENDS = ["numba", "numpy"]
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _mad_reference(rows):
    rows64 = np.asarray(rows, dtype=np.float64)
    return cdist(rows64, rows64, "cityblock") / rows64.shape[1]


def _mad_with(backend, rows, memory_budget=DEFAULT_MEMORY_BUDGET):
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if backend == "numba":
        return _mad_matrix_numba(rows)
    return _mad_matrix_blocked(rows, memory_budget)


def _relative_error(values, reference):
    return float(np.max(np.abs(values - reference) / np.maximum(np.abs(reference), np.finfo(np.float64).tiny)))


@pytest.fixture(autouse=True, scope="module")
def _numba_available():
    if mad_backend() != "numba":  # pragma: no cover - the project declares numba
        pytest.fail("numba did not load: the compiled MAD kernel is untested")


# --- agreement with the references -------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 2), (3, 7), (17, 64), (64, 1000), (40, 25088), (129, 513)])
def test_pearson_matches_corrcoef(shape, rng):
    rows = rng.standard_normal(shape).astype(np.float32) * rng.uniform(0.01, 100, size=(shape[0], 1))
    r = pearson_matrix(rows)
    assert r.dtype == np.float32 and r.shape == (shape[0], shape[0])
    np.testing.assert_allclose(r, np.corrcoef(rows.astype(np.float64)), rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1, 3), (2, 1), (3, 7), (4, 8), (5, 513), (9, 1024), (64, 1000), (40, 25088)])
def test_mad_matches_cdist(backend, shape, rng):
    # Row counts around multiples of four and fan-ins around the 512-element chunk hit every
    # edge of the kernel's blocks; 25,088 is the fan-in of VGG16's first dense layer.
    rows = rng.standard_normal(shape).astype(np.float32) * rng.uniform(0.01, 100, size=(shape[0], 1))
    mad = _mad_with(backend, rows)
    assert mad.dtype == np.float32 and mad.shape == (shape[0], shape[0])
    reference = _mad_reference(rows)
    off = ~np.eye(shape[0], dtype=bool)
    if off.any():
        assert _relative_error(mad[off], reference[off]) <= RTOL
    assert (np.diag(mad) == 0).all() and (mad == mad.T).all()


def test_mad_backends_agree_and_the_environment_variable_selects_numpy(rng, monkeypatch):
    rows = rng.standard_normal((37, 300)).astype(np.float32)
    compiled = mad_matrix(rows)
    monkeypatch.setenv("WEIGHTKIT_NO_NUMBA", "1")
    assert mad_backend() == "numpy"
    fallback = mad_matrix(rows)
    monkeypatch.delenv("WEIGHTKIT_NO_NUMBA")
    assert mad_backend() == "numba"
    assert _relative_error(compiled[~np.eye(37, dtype=bool)], fallback[~np.eye(37, dtype=bool)]) <= RTOL


@pytest.mark.parametrize("memory_budget", [1, 10_000, 200_000, DEFAULT_MEMORY_BUDGET])
def test_blocked_fallback_is_exact_for_any_block_size(memory_budget, rng):
    rows = rng.standard_normal((23, 50)).astype(np.float32)
    mad = _mad_matrix_blocked(rows, memory_budget)
    np.testing.assert_allclose(mad, _mad_reference(rows), rtol=RTOL, atol=0)
    assert (mad == mad.T).all()


@pytest.mark.parametrize("layout", ["four rows", "tiled groups"])
@pytest.mark.parametrize("shape", [(33, 70), (130, 600), (200, 1100)])
def test_kernel_layouts_and_thread_counts_agree(layout, shape, rng, monkeypatch):
    # Small inputs go four rows at a time; SMALL_BYTES = 0 sends them through the cache-tiled
    # groups used for large layers (group and tile edges: 130 and 200 are not multiples of 64).
    from weightkit.analysis.numeric import _mad_kernel

    monkeypatch.setattr(_mad_kernel, "SERIAL_WORK", 0)  # threads even for these small inputs
    if layout == "tiled groups":
        monkeypatch.setattr(_mad_kernel, "SMALL_BYTES", 0)
    rows = rng.standard_normal(shape).astype(np.float32)
    reference = _mad_reference(rows)
    off = ~np.eye(shape[0], dtype=bool)
    results = []
    for threads in (1, 2, 3):
        out = np.full((shape[0], shape[0]), np.nan, dtype=np.float32)
        _mad_kernel.mad_into(rows, out, threads=threads)
        assert _relative_error(out[off], reference[off]) <= RTOL
        assert (out == out.T).all() and (np.diag(out) == 0).all()
        results.append(out)
    for out in results[1:]:
        np.testing.assert_array_equal(out, results[0])  # every entry written, bit for bit the same


# --- memory ---------------------------------------------------------------------------------------


def _peak_bytes(function, *args):
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("memory_budget", [2**20, 4 * 2**20])
def test_blocked_fallback_stays_within_the_memory_budget(memory_budget, rng):
    # 400 x 2000 float32 rows: a float64 copy (6.4 MB) would not fit; blocks must.
    rows = rng.standard_normal((400, 2000)).astype(np.float32)
    result = 400 * 400 * 4
    assert _peak_bytes(_mad_matrix_blocked, rows, memory_budget) <= result + memory_budget


def test_compiled_kernel_needs_no_working_memory(rng):
    rows = rng.standard_normal((400, 2000)).astype(np.float32)
    _mad_matrix_numba(rows[:8])  # compile (or load the cache) outside the measurement
    assert _peak_bytes(_mad_matrix_numba, rows) <= 400 * 400 * 4 + 64 * 1024


def test_pearson_makes_no_float64_copy_of_the_weights(rng):
    rows = rng.standard_normal((256, 8192)).astype(np.float32)  # 8 MiB; a float64 copy is 16 MiB
    peak = _peak_bytes(pearson_matrix, rows)
    # One float32 working copy of the rows plus the result, with 10% slack for small arrays.
    assert peak <= 1.1 * (rows.nbytes + 256 * 256 * 4)


# --- edge cases ---------------------------------------------------------------------------------


def test_constant_rows_have_zero_correlation_and_one_on_the_diagonal():
    rows = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [0.0, 0.0, 0.0], [3.0, 2.0, 1.5]], dtype=np.float32)
    r = pearson_matrix(rows)
    assert np.isfinite(r).all()
    np.testing.assert_array_equal(np.diag(r), 1.0)
    np.testing.assert_array_equal(r[1, [0, 2, 3]], 0.0)
    np.testing.assert_array_equal(r[2, [0, 1, 3]], 0.0)
    assert r[0, 3] == pytest.approx(np.corrcoef(rows[0], rows[3])[0, 1], abs=1e-6)
    mad = mad_matrix(rows)
    assert mad[1, 2] == 5.0 and mad[0, 1] == pytest.approx(3.0)


def test_all_rows_constant():
    r = pearson_matrix(np.full((4, 6), 2.5))
    np.testing.assert_array_equal(r, np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(mad_matrix(np.full((4, 6), 2.5)), 0.0)


def test_one_row():
    np.testing.assert_array_equal(pearson_matrix([[1.0, 2.0]]), [[1.0]])
    np.testing.assert_array_equal(mad_matrix([[1.0, 2.0]]), [[0.0]])
    np.testing.assert_array_equal(pearson_matrix([[3.0]]), [[1.0]])


def test_subnormal_rows_are_exact():
    tiny = np.float32(1e-45)  # the smallest positive float32 (subnormal)
    rows = np.array([[0, 3, 1, 7], [0, 6, 2, 14], [7, 1, 3, 0]], dtype=np.float32) * tiny
    normal = np.array([[0, 3, 1, 7], [0, 6, 2, 14], [7, 1, 3, 0]], dtype=np.float32)
    np.testing.assert_array_equal(pearson_matrix(rows), pearson_matrix(normal))
    for backend in BACKENDS:
        np.testing.assert_array_equal(_mad_with(backend, rows), _mad_reference(rows).astype(np.float32))


def test_huge_values_stay_finite_and_exact():
    big = np.float32(3e38)
    rows = np.array([[big, -big, 0.0], [-big, big, big], [1.0, 2.0, 3.0]], dtype=np.float32)
    r = pearson_matrix(rows)
    np.testing.assert_allclose(r, np.corrcoef(rows.astype(np.float64)), atol=1e-6)
    mad = mad_matrix(rows)  # beyond 2**100: the float64 path; MAD[0, 1] = 5e38 saturates
    assert np.isfinite(mad).all()
    assert mad[0, 1] == np.finfo(np.float32).max
    assert mad[0, 2] == pytest.approx(_mad_reference(rows)[0, 2], rel=RTOL)


def test_values_beyond_the_kernel_range_use_the_float64_path(rng):
    rows = (rng.standard_normal((6, 700)) * 1e33).astype(np.float32)
    np.testing.assert_allclose(mad_matrix(rows), _mad_reference(rows), rtol=RTOL)


def test_integer_boolean_and_float64_inputs_are_accepted():
    rows = [[1, 2, 3], [2, 4, 7]]
    assert pearson_matrix(rows).dtype == np.float32
    np.testing.assert_array_equal(mad_matrix([[True, False], [False, False]]), [[0.0, 0.5], [0.5, 0.0]])
    np.testing.assert_allclose(mad_matrix(np.array(rows, dtype=np.float64)), [[0.0, 7 / 3], [7 / 3, 0.0]])


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("function", [pearson_matrix, mad_matrix])
@pytest.mark.parametrize("rows, message", [
    (np.array([[1.0, np.nan], [2.0, 3.0]]),
     "rows contain NaN or Inf; the Pearson and MAD matrices are undefined for them."),
    (np.array([[1.0, np.inf], [2.0, 3.0]]),
     "rows contain NaN or Inf; the Pearson and MAD matrices are undefined for them."),
    (np.array([[1e300, 1.0], [2.0, 3.0]]),
     "rows hold values beyond the float32 range (±3.4e38); rescale the weights first."),
    (np.zeros((0, 4)), "Expected rows with at least one neuron and one input, got shape (0, 4)."),
    (np.zeros((3, 0)), "Expected rows with at least one neuron and one input, got shape (3, 0)."),
    (np.zeros(4), ("Expected rows as a 2-D array of shape (n_neurons, fan_in), got 1-D array of shape (4,) "
                   "instead; reshape it with rows.reshape(n_neurons, -1).")),
    (np.zeros((2, 2, 2)), ("Expected rows as a 2-D array of shape (n_neurons, fan_in), got 3-D array of shape "
                           "(2, 2, 2) instead; reshape it with rows.reshape(n_neurons, -1).")),
    (np.array([["a", "b"]]), "Expected real numbers in rows, got dtype <U1."),
    (np.ones((2, 2), dtype=complex), "Expected real numbers in rows, got dtype complex128."),
])
def test_bad_rows_raise_one_line_errors(function, rows, message):
    with pytest.raises(WeightkitError) as error:
        function(rows)
    assert str(error.value) == message


@pytest.mark.parametrize("function", [pearson_matrix, mad_matrix])
def test_ragged_rows_raise_one_line_errors(function):
    with pytest.raises(WeightkitError) as error:
        function([[1.0, 2.0], [3.0]])
    message = str(error.value)
    assert message.startswith("Expected rows as a 2-D array of numbers, got list that numpy cannot convert (")
    assert message.endswith("); give every row the same length.") and "\n" not in message


@pytest.mark.parametrize("memory_budget", [0, -5, "lots", True])
def test_bad_memory_budget(memory_budget):
    with pytest.raises(WeightkitError) as error:
        mad_matrix(np.ones((2, 2)), memory_budget=memory_budget)
    assert str(error.value) == (f"memory_budget: expected a positive number of bytes, got {memory_budget!r}; "
                                "the default is 256 MiB (268435456).")


# --- properties -----------------------------------------------------------------------------------

# Any finite float32, subnormals and values near ±3.4e38 included.
_any_float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
_any_rows = st.tuples(st.integers(1, 9), st.integers(1, 40)).flatmap(
    lambda shape: arrays(np.float32, shape, elements=_any_float32))
# Well-conditioned rows for comparisons: moderate values, spread well above rounding level.
_moderate = st.floats(-100, 100, width=32)


def _well_conditioned(rows, ratio=1e-3):
    """Every row's spread is well above float32 rounding of its values (see pearson_matrix)."""
    rows = rows.astype(np.float64)
    return bool((rows.std(axis=1) > ratio * np.maximum(np.abs(rows).max(axis=1), 1e-3)).all())


def _spread_out(rows):
    """Give each row whose spread is below 1% of its magnitude a -100 and a 100 (std >= 22)."""
    rows = rows.copy()
    for row in rows:
        if not _well_conditioned(row[None], 1e-2):
            row[:2] = (-100.0, 100.0)
    return rows


_fair_rows = st.tuples(st.integers(2, 9), st.integers(3, 40)).flatmap(
    lambda shape: arrays(np.float32, shape, elements=_moderate)).map(_spread_out)


@PROPERTY_SETTINGS
@given(_any_rows)
def test_any_finite_rows_give_valid_matrices(rows):
    n = rows.shape[0]
    r = pearson_matrix(rows)
    assert np.isfinite(r).all() and (r == r.T).all()
    assert (np.abs(r) <= 1).all() and (np.diag(r) == 1).all()
    mads = [_mad_with(backend, rows) for backend in BACKENDS] + [mad_matrix(rows)]
    for mad in mads:
        assert mad.shape == (n, n) and np.isfinite(mad).all()
        assert (mad == mad.T).all() and (mad >= 0).all() and (np.diag(mad) == 0).all()
    reference = np.minimum(_mad_reference(rows), np.finfo(np.float32).max)
    # Below the smallest normal float32 a result is subnormal: its rounding is absolute.
    np.testing.assert_allclose(mads[-1], reference, rtol=RTOL, atol=np.finfo(np.float32).smallest_normal)


@PROPERTY_SETTINGS
@given(_fair_rows)
def test_matrices_agree_with_the_references(rows):
    np.testing.assert_allclose(pearson_matrix(rows), np.corrcoef(rows.astype(np.float64)), rtol=0, atol=1e-5)
    for backend in BACKENDS:  # a subnormal MAD rounds in absolute terms (below 1.2e-38)
        np.testing.assert_allclose(_mad_with(backend, rows), _mad_reference(rows), rtol=RTOL,
                                   atol=np.finfo(np.float32).smallest_normal)


@PROPERTY_SETTINGS
@given(_fair_rows, st.data())
def test_pearson_is_unchanged_by_positive_scaling_and_shifting_of_a_row(rows, data):
    row = data.draw(st.integers(0, rows.shape[0] - 1))
    scale = data.draw(st.floats(0.1, 10))
    shift = data.draw(st.floats(-10, 10))
    changed = rows.copy()
    changed[row] = rows[row] * np.float32(scale) + np.float32(shift)
    assume(_well_conditioned(changed))  # the float32 result of the affine map keeps its spread
    np.testing.assert_allclose(pearson_matrix(changed), pearson_matrix(rows), rtol=0, atol=1e-4)
    # A power of two scales exactly, and so does the row normalization: bit for bit the same.
    exponent = data.draw(st.integers(-60, 60))
    exact = rows.copy()
    exact[row] = np.ldexp(rows[row], exponent)
    np.testing.assert_array_equal(pearson_matrix(exact), pearson_matrix(rows))


@PROPERTY_SETTINGS
@given(_fair_rows, st.floats(-100, 100))
def test_mad_is_shift_invariant_and_scales_with_the_weights(rows, shift):
    both = rows.astype(np.float64) + shift
    # Shifting rounds each weight to float32 again (up to 1.5e-5 near 200), hence the atol.
    np.testing.assert_allclose(mad_matrix(both), mad_matrix(rows), rtol=1e-4, atol=1e-4)
    # Exact up to the rounding of subnormal results (absolute, below 1.2e-38).
    np.testing.assert_allclose(mad_matrix(rows * np.float32(4)), 4 * mad_matrix(rows), rtol=RTOL,
                               atol=4 * np.finfo(np.float32).smallest_normal)


# --- command line -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model_path(keras, tmp_path_factory):
    """An untrained 8-24-24-3 Dense model saved as .keras (no training: only its weights matter)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(24, name="a"), keras.layers.Dense(24, name="b"),
                              keras.layers.Dense(3, name="c")])
    path = tmp_path_factory.mktemp("matrices") / "small.keras"
    model.save(path)
    return str(path)


def test_memory_budget_option_changes_nothing_but_memory(small_model_path, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WEIGHTKIT_NO_NUMBA", "1")  # the budget only shapes the numpy path's blocks
    documents = []
    for budget in ("1", "256"):
        out = tmp_path / f"budget-{budget}.json"
        status = run_cli(cli, ["analyze", small_model_path, "--metric", "mad", "--memory-budget", budget,
                               "--json", str(out), "--quiet"])
        assert status == 0, capsys.readouterr().err
        documents.append(json.loads(out.read_text()))
    assert documents[0]["layers"] == documents[1]["layers"]
    capsys.readouterr()
    assert run_cli(cli, ["analyze", small_model_path, "--memory-budget", "0"]) == 2
    assert capsys.readouterr().err == ("weightkit analyze: error: Invalid value for '--memory-budget': 0 is not in "
                                       "the range x>=1. (see 'weightkit analyze --help')\n")
