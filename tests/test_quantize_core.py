"""The quantization comparison's numpy core: metrics, agreement per output kind, the export choice."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.quantize import (
    accuracy,
    agreement,
    choose_export,
    converter_reason,
    decision_threshold,
    dequantize_array,
    mean_absolute_error,
    output_differences,
    output_kind,
    parse_modes,
    per_class_accuracy,
    quantize_array,
    representative_dataset,
    score_drop,
)


@pytest.mark.parametrize("width, task, expected", [
    (10, "classification", "multiclass"), (10, None, "multiclass"), (1, "classification", "binary"),
    (1, "regression", "regression"), (1, None, "regression"), (3, "regression", "regression"),
])
def test_output_kind(width, task, expected):
    assert output_kind(width, task) == expected


def test_agreement_multiclass_is_argmax_match(rng):
    reference = rng.random((200, 5))
    candidate = reference.copy()
    candidate[:10] = candidate[:10, ::-1]  # reversed rows: argmax changes unless symmetric
    expected = np.mean(reference.argmax(1) == candidate.argmax(1))
    assert agreement(reference, candidate, "multiclass") == pytest.approx(expected)
    assert agreement(reference, reference, "multiclass") == 1.0


@pytest.mark.parametrize("threshold", [0.5, 0.0])
def test_agreement_binary_uses_the_threshold(threshold):
    reference = np.array([[threshold - 0.1], [threshold + 0.1], [threshold + 0.3], [threshold - 0.3]])
    candidate = np.array([[threshold + 0.01], [threshold + 0.2], [threshold + 0.1], [threshold - 0.2]])
    assert agreement(reference, candidate, "binary", threshold=threshold) == 0.75


def test_decision_threshold_tells_probabilities_from_logits():
    assert decision_threshold(np.array([0.0, 0.3, 1.0])) == 0.5
    assert decision_threshold(np.array([-2.0, 0.3, 4.0])) == 0.0


def test_agreement_regression_is_within_one_percent_of_the_range():
    reference = np.linspace(0.0, 100.0, 11)[:, None]  # range 100: tolerance 1.0
    candidate = reference + np.array([0.0, 0.5, 0.99, 1.01, 2.0, 0, 0, 0, 0, 0, -1.5])[:, None]
    assert agreement(reference, candidate, "regression") == pytest.approx(8 / 11)
    assert agreement(reference, candidate, "regression", tolerance=0.03) == 1.0


def test_agreement_regression_multi_output_needs_every_output_close():
    reference = np.array([[0.0, 0.0], [10.0, 10.0]])
    candidate = np.array([[0.05, 0.5], [10.0, 10.0]])
    assert agreement(reference, candidate, "regression") == 0.5


def test_agreement_rejects_mismatched_shapes_and_kinds():
    with pytest.raises(ValueError, match=r"agreement: reference has shape \(3, 2\), candidate \(3, 1\)"):
        agreement(np.zeros((3, 2)), np.zeros((3, 1)), "multiclass")
    with pytest.raises(ValueError, match="expected one of multiclass, binary, regression"):
        agreement(np.zeros((3, 2)), np.zeros((3, 2)), "ranking")


def test_output_differences_match_numpy(rng):
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    assert output_differences(a, b) == pytest.approx((np.abs(a - b).max(), np.abs(a - b).mean()))


def test_accuracy_with_integer_and_one_hot_labels(rng):
    outputs = rng.random((100, 4))
    labels = rng.integers(0, 4, 100)
    expected = np.mean(outputs.argmax(1) == labels)
    assert accuracy(outputs, labels, "multiclass") == pytest.approx(expected)
    assert accuracy(outputs, np.eye(4)[labels], "multiclass") == pytest.approx(expected)


def test_mean_absolute_error_accepts_flat_targets():
    assert mean_absolute_error(np.array([[1.0], [3.0]]), np.array([2.0, 2.0])) == 1.0


def test_per_class_accuracy_marks_absent_classes_nan():
    outputs = np.eye(3)[[0, 0, 1, 2]]
    result = per_class_accuracy(outputs, np.array([0, 1, 1, 2]), "multiclass", 4)
    np.testing.assert_allclose(result[:3], [1.0, 0.5, 1.0])
    assert np.isnan(result[3])


@pytest.mark.parametrize("basis, reference, candidate, expected", [
    ("accuracy", 0.97, 0.96, 1.0), ("accuracy", 0.95, 0.96, -1.0), ("mae", 2.0, 2.1, 5.0),
    ("agreement", None, 0.993, 0.7), ("mae", 0.0, 0.0, 0.0),
])
def test_score_drop(basis, reference, candidate, expected):
    assert score_drop(basis, reference, candidate) == pytest.approx(expected)


CANDIDATES = [{"mode": "float32", "bytes": 400, "drop": 0.0}, {"mode": "dynamic", "bytes": 110, "drop": 0.3},
              {"mode": "float16", "bytes": 210, "drop": 0.0}, {"mode": "int8", "bytes": 100, "drop": 2.5}]


def test_choose_export_takes_the_smallest_within_max_drop():
    mode, reason = choose_export(CANDIDATES, max_drop=1.0)
    assert mode == "dynamic"
    assert reason == "smallest model (110 bytes) whose accuracy drop (0.30 points) is within --max-drop 1"
    assert choose_export(CANDIDATES, max_drop=3.0)[0] == "int8"
    assert choose_export(CANDIDATES, max_drop=0.0)[0] == "float16"


def test_choose_export_without_any_mode_within_max_drop_takes_the_least_drop():
    candidates = [dict(c, drop=c["drop"] + 5) for c in CANDIDATES]
    mode, reason = choose_export(candidates, max_drop=1.0, basis="agreement")
    assert mode == "float16"
    assert reason == ("no mode within --max-drop 1; exported the one with the smallest disagreement "
                      "(5.00 points, 210 bytes)")


def test_choose_export_honours_export_and_refuses_a_missing_mode():
    assert choose_export(CANDIDATES, export="int8")[0] == "int8"
    with pytest.raises(WeightkitError) as error:
        choose_export(CANDIDATES, export="int16x8")
    assert str(error.value) == ("--export int16x8: that mode was not converted (failed or not in --modes); "
                                "choose one of float32, dynamic, float16, int8.")


def test_parse_modes_keeps_order_and_refuses_unknown():
    assert parse_modes("int8, float32,int8") == ["int8", "float32"]
    with pytest.raises(WeightkitError) as error:
        parse_modes("float32,int3")
    assert str(error.value) == ("--modes: unknown mode 'int3'; expected a comma-separated list of float32, "
                                "dynamic, float16, int8, int8-io, int16x8, dynamic-int4, int4, keras-int8, "
                                "keras-int4, keras-float8, mixed, onnx.")


@settings(max_examples=50, deadline=None)
@given(scale=st.floats(1e-3, 1.0), zero_point=st.integers(-20, 20), seed=st.integers(0, 2**16))
def test_quantize_dequantize_round_trip_within_half_a_step(scale, zero_point, seed):
    x = np.random.default_rng(seed).uniform(-100 * scale, 100 * scale, 64).astype(np.float32)
    back = dequantize_array(quantize_array(x, scale, zero_point, np.int8), scale, zero_point)
    assert np.all(np.abs(back - x) <= scale / 2 * (1 + 1e-4) + 1e-6)


def test_quantize_array_clips_to_the_type():
    assert quantize_array(np.array([-1e6, 1e6]), 0.1, 0, np.int8).tolist() == [-128, 127]


def test_converter_reason_keeps_the_first_error_without_the_location():
    message = ("<unknown>:0: error: loc(callsite(fused[\"TensorListReserve:\", \"f/lstm_1/TensorArrayV2_1@x\"] at "
               "fused[\"StatefulPartitionedCall:\", \"y\"])): 'tf.TensorListReserve' op requires element_shape to be "
               "static during TF Lite transformation pass\n<unknown>:0: note: loc(fused[...]): called from\n")
    assert converter_reason(RuntimeError(message)) == ("RuntimeError: 'tf.TensorListReserve' op requires "
                                                       "element_shape to be static during TF Lite transformation pass")
    assert converter_reason(RuntimeError("Quantization to 16x8-bit not yet supported for op: 'ELU'.")) == (
        "RuntimeError: Quantization to 16x8-bit not yet supported for op: 'ELU'.")


def test_representative_dataset_is_a_seeded_sample(rng):
    x = rng.random((500, 3))
    first = [s[0] for s in representative_dataset(x, 20, seed=1)()]
    again = [s[0] for s in representative_dataset(x, 20, seed=1)()]
    assert len(first) == 20 and all(s.shape == (1, 3) and s.dtype == np.float32 for s in first)
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))
    assert len(list(representative_dataset(x[:5], 20)())) == 5


def test_per_element_counts_every_pixel():
    from weightkit.compress.quantize.compare import compare_outputs, per_element

    rng = np.random.default_rng(0)
    reference = rng.random((3, 4, 4, 2))
    y = reference.argmax(axis=-1)  # one class per pixel, shape (3, 4, 4)
    rows, same, labels = per_element(reference, reference, y)
    assert rows.shape == (48, 2) and labels.shape == (48,)
    candidate = reference.copy()
    candidate[0, 0, 0] = candidate[0, 0, 0, ::-1]  # flip one pixel's class of 48
    result = compare_outputs(reference, candidate, y)
    assert result["samples"] == 3
    assert result["agreement"] == pytest.approx(47 / 48) and result["accuracy_after"] == pytest.approx(47 / 48)


def test_compare_several_reports_each_output_and_mae_for_regression():
    from weightkit.compress.quantize.compare import compare_several

    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=10)
    value = rng.normal(size=(10, 1))
    target = value + 0.5
    result = compare_several([probs, value], [probs, value], [probs.argmax(axis=1), target],
                             ["classification", "regression"], ["cls", "value"])
    assert result["accuracy_before"] == 1.0 and set(result["outputs"]) == {"cls", "value"}
    assert result["outputs"]["value"]["mae_after"] == pytest.approx(0.5)
    assert "mse_after" not in result["outputs"]["value"]
