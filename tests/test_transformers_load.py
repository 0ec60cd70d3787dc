"""keras-hub models in safe mode: installed Keras-ecosystem classes load, forged ones and code do not.

The model is a small keras_hub TransformerEncoder classifier built from code (untrained: loading
does not care), saved and reloaded by each test through weightkit's loader.
"""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from weightkit._common import run_cli
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.loading import load_model
from weightkit.cli import cli

LENGTH, VOCAB = 6, 12


@pytest.fixture(scope="module")
def hub_files(keras, tmp_path_factory):
    """Paths: ``"hub"`` (a TransformerEncoder + Dense classifier, .keras), ``"h5"`` (the same, legacy .h5), ``"plain"``
    (a Dense model), ``"lambda"`` (the hub model with a Lambda) and ``"data"`` (an .npz of token ids and labels)."""
    import keras_hub

    folder = tmp_path_factory.mktemp("hub_load")
    keras.utils.set_random_seed(0)

    def classifier(extra=None):
        tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
        x = keras.layers.Embedding(VOCAB, 8, name="embed")(tokens)
        x = keras_hub.layers.TransformerEncoder(16, 2, name="enc")(x)
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
        x = keras.layers.Dense(8, activation="relu", name="hidden")(x)
        if extra is not None:
            x = extra(x)
        return keras.Model(tokens, keras.layers.Dense(2, activation="softmax", name="probs")(x))

    paths = {"hub": folder / "hub.keras", "h5": folder / "hub.h5", "lambda": folder / "hub_lambda.keras",
             "plain": folder / "plain.keras", "data": folder / "tokens.npz"}
    model = classifier()
    model.save(paths["hub"])
    model.save(paths["h5"])
    classifier(keras.layers.Lambda(lambda t: t * 2.0, name="double")).save(paths["lambda"])
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(3, name="hidden")(inputs)).save(paths["plain"])
    rng = np.random.default_rng(0)
    np.savez(paths["data"], x=rng.integers(0, VOCAB, size=(120, LENGTH)).astype("int32"),
             y=rng.integers(0, 2, size=120))
    return paths


def _forged(path, folder, **identity):
    """A copy of the model file whose layer ``enc`` claims another module, class or registered name."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    layer = next(item for item in config["config"]["layers"] if item["config"]["name"] == "enc")
    layer.update(identity)
    forged = folder / "forged.keras"
    with zipfile.ZipFile(forged, "w") as archive:
        for name, data in {**members, "config.json": json.dumps(config)}.items():
            archive.writestr(name, data)
    return forged


@pytest.mark.parametrize("fmt", ["hub", "h5"])
def test_a_keras_hub_model_loads_in_safe_mode(hub_files, fmt):
    """A legacy .h5 names the class only by its registered name (no module): Keras' registry resolves it."""
    loaded = load_model(hub_files[fmt])
    assert type(loaded.model.get_layer("enc")).__name__ == "TransformerEncoder"
    assert loaded.model.predict(np.zeros((2, LENGTH), "int32"), verbose=0).shape == (2, 2)


@pytest.mark.parametrize("identity, what", [
    ({"module": "os", "class_name": "TransformerEncoder"}, "keras_hub>TransformerEncoder"),
    ({"class_name": "Evil", "registered_name": "keras_hub>Evil"}, "keras_hub>Evil"),
    ({"registered_name": "other_hub>TransformerEncoder"}, "other_hub>TransformerEncoder"),
])
def test_a_forged_keras_hub_identity_is_still_refused(hub_files, tmp_path, identity, what):
    """Module, class and registered name must all be keras-hub's own: the registered name alone proves nothing."""
    path = _forged(hub_files["hub"], tmp_path, **identity)
    with pytest.raises(WeightkitError) as info:
        load_model(path)
    assert str(info.value) == (f"{path}: layer 'enc' is an unknown custom object ({what}), whose code would run "
                               "while loading; refused in safe mode: pass --unsafe (unsafe=True) only if you trust "
                               "the file.")


def test_a_lambda_beside_keras_hub_layers_still_needs_unsafe(hub_files):
    with pytest.raises(WeightkitError) as info:
        load_model(hub_files["lambda"])
    assert str(info.value) == (f"{hub_files['lambda']}: layer 'double' is a Lambda layer, whose code would run while "
                               "loading; refused in safe mode: pass --unsafe (unsafe=True) only if you trust the file.")


def test_without_keras_hub_installed_the_refusal_names_the_package(hub_files, monkeypatch):
    """``sys.modules[name] = None`` is Python's own way to make a module unimportable (ModuleNotFoundError)."""
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    for unsafe in (False, True):
        with pytest.raises(WeightkitError) as info:
            load_model(hub_files["hub"], unsafe=unsafe)
        assert str(info.value) == (f"{hub_files['hub']}: layer 'enc' is keras_hub>TransformerEncoder, but it is a "
                                   "class of keras-hub, which is not installed here; install it with pip install "
                                   "keras-hub and run again.")


def test_keras_hub_is_imported_only_for_a_model_that_names_it(hub_files):
    """A fresh process: loading a plain model leaves keras_hub unimported; a keras-hub model imports it."""
    script = ("import sys; from weightkit.analysis.files.loading import load_model; "
              f"load_model({str(hub_files['plain'])!r}); print('keras_hub' in sys.modules); "
              f"load_model({str(hub_files['hub'])!r}); print('keras_hub' in sys.modules)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True"]


def _run(capsys, argv):
    capsys.readouterr()
    status = run_cli(cli, [str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_analyze_from_the_file_opens_the_keras_hub_encoder(capsys, hub_files, tmp_path):
    # The file's TransformerEncoder is opened (analysis/kinds/composites.py): its sublayers' entries, as with Keras.
    status, out, err = _run(capsys, ["analyze", hub_files["hub"], "--json", tmp_path / "a.json"])
    assert (status, err) == (0, "")
    written = json.loads((tmp_path / "a.json").read_text())
    assert [layer["name"] for layer in written["layers"]] == [
        "enc/self_attention_layer/heads", "enc/feedforward_intermediate_dense", "enc/feedforward_output_dense",
        "hidden", "probs"]
    assert [skipped["name"] for skipped in written["skipped"]] == ["embed"]


@pytest.mark.parametrize("command", ["analyze", "merge", "quantize"])
def test_commands_that_load_the_model_accept_keras_hub_in_safe_mode(capsys, hub_files, tmp_path, command):
    argv = {"analyze": ["analyze", hub_files["hub"], "--data", hub_files["data"]],
            "merge": ["merge", hub_files["hub"], "-o", tmp_path / "merged.keras", "--ratio", "0.5"],
            "quantize": ["quantize", hub_files["hub"], "-o", tmp_path / "q", "--modes", "float32,int8",
                         "--data", hub_files["data"], "--calibration-samples", "20"]}[command]
    status, out, err = _run(capsys, argv)
    assert status == 0, err
    assert "unknown custom object" not in out + err
    if command == "merge":
        assert type(load_model(tmp_path / "merged.keras").model.get_layer("enc")).__name__ == "TransformerEncoder"
    if command == "quantize":
        assert (tmp_path / "q" / "model.tflite").is_file()
