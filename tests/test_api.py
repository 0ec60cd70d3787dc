"""The package-level verbs: a model or its path in, the model first and a result with ``to_dict()`` second."""

import importlib
import inspect
import json
import os
import pkgutil

import numpy as np
import pytest

from weightkit.analysis.errors import WeightkitError

FAST = {"latency_repeats": 2, "throughput_repeats": 1}
SOURCE = "sklearn:digits (training split)"


@pytest.fixture(scope="module")
def small(keras, digits, tmp_path_factory):
    """``(model, path)``: a 64-24-24-10 MLP trained briefly, saved, and loaded back from the file."""
    from weightkit.analysis import load_model

    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), name="pixels")
    hidden = keras.layers.Dense(24, activation="relu", kernel_regularizer=keras.regularizers.L2(3e-3),
                                name="hidden1")(inputs)
    hidden = keras.layers.Dense(24, activation="relu", name="hidden2")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="classes")(hidden), name="small")
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(digits.x_train, digits.y_train, epochs=3, batch_size=64, verbose=0)
    path = str(tmp_path_factory.mktemp("api") / "small.keras")
    model.save(path)
    return load_model(path).model, path


# ---------------------------------------------------------------- what each package offers

VERBS = {"weightkit.analysis": {"analyze", "analyze_activations"},
         "weightkit.compress": {"merge_neurons", "retrain", "quantize_model"}, "weightkit.reports": {"write_report"}}
INTERNALS = {"carry_relation", "fold_into_rows", "MergeSite", "kernel_rows", "analyze_model", "merge_redundant",
             "merge_by_data"}


@pytest.mark.parametrize("package", sorted(VERBS))
def test_each_package_lists_its_verbs_and_not_its_internals(package):
    module = importlib.import_module(package)
    assert VERBS[package] <= set(module.__all__)
    assert INTERNALS.isdisjoint(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)


@pytest.mark.parametrize("module, names", [
    ("weightkit.compress.merge.by_weights", {"carry_relation"}),
    ("weightkit.compress.merge.fitting.data_fit", {"fold_into_rows"}),
    ("weightkit.compress.decorrelate.penalty", {"kernel_rows"}),
])
def test_internal_helpers_are_not_in_their_modules_all(module, names):
    assert names.isdisjoint(importlib.import_module(module).__all__)


@pytest.mark.parametrize("package", ["weightkit.analysis", "weightkit.compress", "weightkit.compress.merge",
                                     "weightkit.compress.decorrelate", "weightkit.compress.quantize",
                                     "weightkit.reports"])
def test_no_package_attribute_shadows_a_subpackage_or_module(package):
    module = importlib.import_module(package)
    for info in pkgutil.iter_modules(module.__path__):
        importlib.import_module(f"{package}.{info.name}")
        assert inspect.ismodule(getattr(module, info.name)), f"{package}.{info.name}"


# ---------------------------------------------------------------- analysis

def test_analyze_takes_a_model_or_its_path(small):
    from weightkit.analysis import ModelAnalysis, analyze

    model, path = small
    by_model, by_path = analyze(model), analyze(path)
    assert isinstance(by_path, ModelAnalysis)
    assert (by_model.path, by_path.path) == (None, path)
    first, second = by_model.to_dict(), by_path.to_dict()
    assert first.pop("path") is None and second.pop("path") == path
    assert first == second
    assert [layer.name for layer in by_path.layers] == ["hidden1", "hidden2", "classes"]
    assert by_path.layer("hidden2").to_dict()["neurons"] == 24


def test_analyze_with_data_attaches_dead_neurons_and_activation_groups(small, digits):
    from weightkit.analysis import analyze, analyze_activations

    _, path = small
    result = analyze(path, data="sklearn:digits", samples=200)
    reference = analyze_activations(path, digits, samples=200)
    for name in ("hidden1", "hidden2"):
        assert result.layer(name).extras["dead"] == reference.layer(name).dead
        assert result.layer(name).extras["activation"]["groups"] == reference.layer(name).groups
    assert result.notes[-1] == f"activations: 200 seeded input samples of {SOURCE} (seed 0)"


def test_analyze_activations_takes_a_dataset_an_array_or_a_spec(small, digits):
    from weightkit.analysis import ActivationAnalysis, analyze_activations

    model, path = small
    results = [analyze_activations(model, digits, samples=200), analyze_activations(path, digits.x_train, samples=200),
               analyze_activations(model, "sklearn:digits", samples=200)]
    assert all(isinstance(result, ActivationAnalysis) for result in results)
    assert [result.source for result in results] == [SOURCE, None, SOURCE]
    documents = [result.to_dict() for result in results]
    for document in documents:
        document.pop("source")
    assert documents[0] == documents[1] == documents[2]
    layer = results[0].layer("hidden1")
    assert layer.to_dict() == {"name": "hidden1", "layer": "hidden1", "type": "Dense", "neurons": 24,
                               **layer.to_extras()}


@pytest.mark.parametrize("call, message", [
    (lambda model: __import__("weightkit.analysis").analysis.analyze(42),
     "Expected a keras.Model or the path of a .keras or .h5 file, got int; pass the model itself or the file it "
     "was saved to."),
    (lambda model: __import__("weightkit.analysis").analysis.analyze_activations(model, {"x": np.zeros((4, 64))}),
     "data: expected a weightkit.analysis.data.datasets.Dataset, an array of inputs (a list of arrays for a model with "
     "several inputs) or a data specification (PATH.npz, PATH.csv, an image folder or sklearn:NAME), got dict."),
])
def test_a_wrong_argument_type_is_one_clear_line(small, call, message):
    with pytest.raises(WeightkitError) as error:
        call(small[0])
    assert str(error.value) == message


# ---------------------------------------------------------------- compress: merge

def test_merge_neurons_by_weights_takes_a_model_or_its_path(keras, small, digits):
    from weightkit.compress import BaseMergeReport, MergeReport, merge_neurons
    from weightkit.compress.merge import compare_models

    model, path = small
    merged, report = merge_neurons(model, ratio=0.5)
    from_path, evaluated = merge_neurons(path, "weights", ratio=0.5, evaluate_on="sklearn:digits")
    assert isinstance(from_path, keras.Model) and isinstance(evaluated, MergeReport)
    assert isinstance(evaluated, BaseMergeReport) and evaluated.mode == "weights"
    for a, b in zip(merged.get_weights(), from_path.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert report.evaluation is None
    assert evaluated.layer("hidden1").neurons_after == 12
    expected = compare_models(model, merged, digits.x_test, digits.y_test)
    assert evaluated.evaluation == {**expected, "data": "sklearn:digits"}
    assert set(expected) == {"samples", "max_abs_output_difference", "agreement", "accuracy_before", "accuracy_after"}
    document = evaluated.to_dict()
    assert document.pop("evaluation") == evaluated.evaluation
    # Held-out data brings the one-line warning when agreement is below 0.9 (issue 28); without it there is none.
    assert (document.pop("warning") is not None) == (evaluated.evaluation["agreement"] < 0.9)
    assert report.to_dict()["warning"] is None
    assert document == {key: value for key, value in report.to_dict().items() if key not in ("evaluation", "warning")}
    assert list(document)[:4] == ["model", "metric", "threshold", "ratio"]


def test_merge_neurons_by_data_takes_a_dataset_an_array_or_a_spec(small, digits):
    from weightkit.compress import BaseMergeReport, DataMergeReport, merge_neurons

    model, path = small
    _, report = merge_neurons(model, "data", digits, ratio=0.5, samples=300, evaluate_on=digits)
    _, by_array = merge_neurons(path, "data", digits.x_train, ratio=0.5, samples=300)
    _, by_spec = merge_neurons(path, "data", "sklearn:digits", ratio=0.5, samples=300)
    assert isinstance(report, DataMergeReport) and isinstance(report, BaseMergeReport) and report.mode == "data"
    assert [report.calibration, by_array.calibration, by_spec.calibration] == [SOURCE, None, SOURCE]
    removed = [[item["neuron"] for item in layer.removed] for layer in report.layers]
    assert removed == [[item["neuron"] for item in layer.removed] for layer in by_array.layers]
    assert report.layer("hidden2").n_removed == 12
    assert report.evaluation["data"] == "sklearn:digits" and report.evaluation["samples"] == len(digits.x_test)
    assert by_array.evaluation is None
    assert report.to_dict()["calibration"]["source"] == SOURCE


@pytest.mark.parametrize("mode, data, options, message", [
    ("prune", None, {}, "Invalid value for mode. Expected one of ['weights', 'data']. Received: mode='prune'."),
    ("weights", "sklearn:digits", {}, "data: only for mode='data', where it calibrates the merge; mode='weights' "
     "compares weight rows and needs no data (pass held-out data as evaluate_on= to measure the merge)."),
    ("data", None, {}, "mode='data': needs data (a Dataset, whose training split calibrates the merge, an array of "
     "training inputs, or a data specification such as sklearn:digits)."),
    ("weights", None, {"max_error": 0.1}, "mode='weights': no option 'max_error'; it takes metric, threshold, ratio, "
     "layers, include_bias, twin_tolerance, progress, unsafe (see weightkit.compress.merge.merge_redundant)."),
])
def test_merge_neurons_checks_its_arguments(small, mode, data, options, message):
    from weightkit.compress import merge_neurons

    with pytest.raises(WeightkitError) as error:
        merge_neurons(small[0], mode, data, **options)
    assert str(error.value) == message


def test_merge_evaluation_thresholds_binary_logits_as_quantization_does(keras):
    """A logit output is judged at 0, not 0.5: the merge and quantize comparisons share one agreement."""
    from weightkit.compress.merge import compare_models
    from weightkit.compress.quantize.compare import agreement, decision_threshold

    def shifted(offset):
        inputs = keras.Input((1,))
        layer = keras.layers.Dense(1)
        model = keras.Model(inputs, layer(inputs))
        layer.set_weights([np.ones((1, 1), np.float32), np.full(1, offset, np.float32)])
        return model

    x = np.array([[-0.5], [-0.2], [0.1], [0.4]], np.float32)
    y = np.array([0, 0, 1, 1])
    evaluation = compare_models(shifted(0.0), shifted(-0.25), x, y)  # logits x and x - 0.25
    assert evaluation["agreement"] == 0.75  # 0.1 changes side of 0 (at 0.5 none would: 1.0)
    assert (evaluation["accuracy_before"], evaluation["accuracy_after"]) == (1.0, 0.75)
    assert evaluation["agreement"] == agreement(x, x - 0.25, "binary", threshold=decision_threshold(x))


# ---------------------------------------------------------------- compress: retrain

def test_retrain_takes_a_path_and_a_spec_and_uses_the_saved_loss(keras, small):
    from weightkit.compress import RetrainResult, retrain

    _, path = small
    trained, result = retrain(path, "sklearn:digits", epochs=1, validation_split=0.0, layers=["hidden2"])
    assert isinstance(trained, keras.Model) and isinstance(result, RetrainResult)
    assert result.loss == "sparse_categorical_crossentropy (compiled with the model)"
    assert result.to_dict()["layers"] == ["hidden2"]


def test_retrain_that_diverges_raises_and_removes_its_backup(small, digits, tmp_path):
    from weightkit.compress import retrain

    work = tmp_path / "work"
    with pytest.raises(WeightkitError) as error:
        retrain(small[0], digits, epochs=2, learning_rate=1e30, strength=1e30, validation_split=0.0,
                work_dir=str(work))
    assert str(error.value) == ("model 'small': training diverged (the weights became NaN or Inf), so nothing was "
                                "written; lower --learning-rate (now 1e+30) or --strength (now 1e+30).")
    assert not work.exists()


# ---------------------------------------------------------------- compress: quantize

def test_quantize_model_takes_a_path_and_a_spec_and_returns_the_files_first(small):
    from weightkit.compress import QuantizationReport, quantize_model

    _, path = small
    contents, report = quantize_model(path, ["float32"], "sklearn:digits", **FAST)
    assert isinstance(report, QuantizationReport) and set(contents) == {"float32"}
    assert contents["float32"][4:8] == b"TFL3"  # a TFLite flatbuffer
    assert report.data == "sklearn:digits" and report.reference.name == path
    assert report.mode("float32").bytes == len(contents["float32"])
    assert json.loads(json.dumps(report.to_dict()))["exported"]["mode"] == "float32"


def test_quantize_model_takes_a_model_and_unlabelled_inputs(small, digits):
    from weightkit.compress import quantize_model

    contents, report = quantize_model(small[0], ["float32", "int8"], digits.x_train[:100], **FAST)
    assert set(contents) == {"float32", "int8"}
    assert report.evaluation == "100 given inputs; no labels" and report.drop_basis == "agreement"
    assert report.mode("int8").ok and report.mode("int8").accuracy is None
    assert report.mode("float32").agreement == 1.0


# ---------------------------------------------------------------- reports

def test_write_report_takes_a_path_and_a_dataset(small, digits, tmp_path):
    from weightkit.reports import write_report

    _, path = small
    result = write_report(path, tmp_path / "report", layers=["hidden2"], data=digits, samples=100)
    assert result.path == path
    assert result.notes[-1] == f"activations: 100 seeded input samples of {SOURCE} (seed 0)"
    document = json.loads((tmp_path / "report" / "analysis.json").read_text())
    assert document == json.loads(json.dumps(result.to_dict()))
    assert document["layers"][0]["dead"] is not None
    assert sorted(os.listdir(tmp_path)) == ["report"]
