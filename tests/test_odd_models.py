"""Models and backups that used to end in an internal error or a half message (issue 29 item 11): one line each.

A mixed_float16 model, a subclassed model's file, a TFSMLayer in safe mode and with ``--unsafe``, and a
``--resume`` from another model's backup; the checks are :mod:`refusal_checks`'.
"""

import json
import os

import numpy as np
import pytest
from refusal_checks import _command_argv, _root, check_refused, run


@pytest.fixture(scope="module")
def odd_models(keras, tmp_path_factory):
    """{case: path}: a mixed_float16 model, a subclassed model, a model with a TFSMLayer; saved, reloadable."""
    from bad_inputs_corpus import N_CLASSES, N_FEATURES

    folder = tmp_path_factory.mktemp("odd_models")
    keras.utils.set_random_seed(0)
    paths = {}
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((N_FEATURES,), name="x")
        hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(N_CLASSES, activation="softmax", name="out",
                                                       dtype="float32")(hidden))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    paths["float16 policy"] = str(folder / "f16.keras")
    model.save(paths["float16 policy"])

    @keras.saving.register_keras_serializable(package="weightkit_tests")
    class Net(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(6, activation="relu")
            self.out = keras.layers.Dense(N_CLASSES, activation="softmax")

        def call(self, x):
            return self.out(self.hidden(x))

    subclassed = Net()
    subclassed(np.zeros((1, N_FEATURES), np.float32))
    paths["subclassed model"] = str(folder / "sub.keras")
    subclassed.save(paths["subclassed model"])

    inputs = keras.Input((N_FEATURES,), name="x")
    served = keras.Model(inputs, keras.layers.Dense(N_CLASSES, name="out")(inputs))
    served.export(str(folder / "saved"), format="tf_saved_model", verbose=False)
    inputs = keras.Input((N_FEATURES,), name="x")
    features = keras.layers.TFSMLayer(str(folder / "saved"), call_endpoint="serve", name="tfsm")(inputs)
    paths["TFSMLayer"] = str(folder / "tfsm.keras")
    keras.Model(inputs, keras.layers.Dense(N_CLASSES, activation="softmax", name="head")(features)).save(
        paths["TFSMLayer"])
    return paths


def test_mixed_on_a_float16_policy_model_is_one_line(capsys, corpus, odd_models, tmp_path):
    """Used to be 'internal error: ValueError: `model_path` or `model_content` must be specified' (exit 1)."""
    path = odd_models["float16 policy"]
    argv = ["quantize", path, "-o", str(tmp_path / "q"), "--data", corpus[1]["good"], "--mixed", "--modes", "float32",
            "-q"]
    check_refused(capsys, argv, str(tmp_path), _root(corpus), message=(
        f"{path}: --mixed quantizes the model's float32 .tflite, which did not convert: its layers compute in float16 "
        "(a mixed-precision policy), whose ops TFLite's builtins do not take; save a float32 copy (rebuild it under "
        "keras.mixed_precision.set_global_policy('float32') and copy the weights) and quantize that."))


@pytest.mark.parametrize("command", ["analyze", "report"])
def test_a_subclassed_models_file_names_its_class(capsys, corpus, odd_models, tmp_path, command):
    """Used to say "model 'None' has no layer with weights (only its input)"."""
    path = odd_models["subclassed model"]
    check_refused(capsys, _command_argv(command, path, None, str(tmp_path)), str(tmp_path), _root(corpus), message=(
        f"{path}: the model is a subclassed model of custom class weightkit_tests>Net, whose layers only its code "
        "builds, so the file lists none to read (and --unsafe cannot help: the class is not in this process); in "
        "Python, with the class imported, save it as a functional model: inp = keras.Input(shape=...); "
        "keras.Model(inp, model.call(inp)).save('model.keras')."))


@pytest.mark.parametrize("command", ["merge", "quantize", "retrain"])
def test_a_tfsm_layer_is_refused_by_name_in_safe_mode(capsys, corpus, odd_models, tmp_path, command):
    """Used to end in Keras' own message cut at 200 characters ('If you trust the sou')."""
    path = odd_models["TFSMLayer"]
    saved = os.path.join(os.path.dirname(path), "saved")
    check_refused(capsys, _command_argv(command, path, corpus[1]["good"], str(tmp_path)), str(tmp_path), _root(corpus),
                  message=f"{path}: layer 'tfsm' is a TFSMLayer, which loads and runs an external SavedModel "
                          f"({saved}), whose code would run while loading; refused in safe mode: pass --unsafe "
                          "(unsafe=True) only if you trust the file.")


def test_merge_unsafe_rebuilds_a_tfsm_layer_and_leaves_safe_mode_as_it_was(capsys, keras, odd_models, tmp_path):
    """Used to be an internal error: the rebuild re-created the TFSMLayer in safe mode although the load had
    --unsafe. The rebuild lifts safe mode for itself only (the global flag is the same afterwards)."""
    from keras.src.saving import serialization_lib

    from bad_inputs_corpus import N_CLASSES, N_FEATURES

    keras.utils.set_random_seed(0)
    inputs = keras.Input((N_FEATURES,), name="x")
    served = keras.layers.TFSMLayer(os.path.join(os.path.dirname(odd_models["TFSMLayer"]), "saved"),
                                    call_endpoint="serve", name="tfsm")(inputs)
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(served)
    path, output = str(tmp_path / "tfsm_hidden.keras"), str(tmp_path / "m.keras")
    keras.Model(inputs, keras.layers.Dense(N_CLASSES, name="head")(hidden)).save(path)
    before = serialization_lib.in_safe_mode()
    status, _, err = run(capsys, ["merge", path, "-o", output, "--unsafe", "--ratio", "0.5", "-q"])
    assert (status, err) == (0, "weightkit: warning: --unsafe: code stored in the model file may run while loading.\n")
    assert serialization_lib.in_safe_mode() == before
    merged = keras.models.load_model(output, safe_mode=False)
    assert merged.get_layer("hidden").units == 3
    x = np.random.default_rng(0).normal(size=(5, N_FEATURES)).astype(np.float32)
    assert merged.predict(x, verbose=0).shape == (5, N_CLASSES)


def test_resume_from_another_models_backup_is_one_line(capsys, keras, corpus, tmp_path):
    """A backup another model (or other options) left beside the output: used to be an internal error after two
    Keras warnings ('Skipping nested container ...', 'A total of 2 objects could not be loaded')."""
    from bad_inputs_corpus import N_CLASSES, N_FEATURES

    from weightkit.analysis.files.work_folder import WorkFolder

    models, data = corpus
    output = str(tmp_path / "r.keras")
    folder = WorkFolder.beside(output, "retrain")
    folder.start()
    inputs = keras.Input((N_FEATURES,), name="x")
    hidden = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    other = keras.Model(inputs, keras.layers.Dense(N_CLASSES, activation="softmax", name="out")(hidden))
    other.save_weights(os.path.join(folder.path, "latest.weights.h5"))
    with open(os.path.join(folder.path, "training_metadata.json"), "w", encoding="utf-8") as handle:
        json.dump({"epoch": 0, "batch": -1}, handle)
    argv = ["retrain", models["good"], "--data", data["good"], "-o", output, "--epochs", "2", "--resume"]
    capsys.readouterr()
    status, _, err = run(capsys, argv)
    assert (status, err.splitlines()[-1]) == (2, (
        f"weightkit retrain: error: --resume: the backup in {folder.path} was written for another model (layer "
        "'hidden' (Dense) has weights of shape (8, 5) there, (8, 6) here); resume with the model and options of the "
        "interrupted run, or pass --force to start over."))
    assert "Traceback" not in err and "Warning" not in err
    assert not os.path.exists(output)
