"""Weight analysis straight from the file (weightkit.analysis.files.stored): the Keras path's JSON, byte for byte, without Keras.

Every zoo form and Keras 2-style ``.h5`` files are analyzed both ways: loaded with Keras
(:func:`weightkit.analysis.load_model`) and read as data (:func:`weightkit.analysis.files.stored.open_stored`); the JSON
documents must be equal as text. A subprocess checks that ``analyze`` and ``report`` without
``--data`` never import TensorFlow or Keras.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from zoo import EXTRA_ZOO, ZOO, load_zoo, zoo_path

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.loading import load_model
from weightkit.analysis.model_analysis import analyze_model
from weightkit.analysis.files.stored import StoredModel, open_stored

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("stored_zoo")


def _both(model, stored, path, **options):
    """The two JSON texts: the loaded model's analysis and the stored file's."""
    by_keras = analyze_model(model, path=path, **options).to_dict()
    by_file = analyze_model(stored, path=path, notes=stored.notes, **options).to_dict()
    return json.dumps(by_keras, indent=1), json.dumps(by_file, indent=1)


@pytest.mark.parametrize("name", sorted({**ZOO, **EXTRA_ZOO}))
def test_the_file_gives_the_keras_paths_json_on_every_zoo_form(zoo_dir, name):
    path = zoo_path(name, zoo_dir)
    stored = open_stored(path)
    by_keras, by_file = _both(load_zoo(name, zoo_dir), stored, path)
    assert by_file == by_keras


@pytest.mark.parametrize("name", ["residual_cnn", "bidirectional_lstm", "nested_functional"])
def test_same_json_under_mad_with_bias_and_chosen_layers(zoo_dir, name):
    path = zoo_path(name, zoo_dir)
    model, stored = load_zoo(name, zoo_dir), open_stored(path)
    by_keras, by_file = _both(model, stored, path, metric="mad", include_bias=True, threshold=0.3)
    assert by_file == by_keras
    first = json.loads(by_keras)["layers"][0]["name"]
    by_keras, by_file = _both(model, stored, path, layers=[first])
    assert by_file == by_keras and len(json.loads(by_file)["layers"]) >= 1


def _nested_on_the_outer_input(keras, form):
    """A Functional ``inner`` called on the outer model's Input: its output is the model's, or feeds a Dense,
    or it is called twice."""
    keras.utils.set_random_seed(0)
    a = keras.Input((3,), name="inner_in")
    inner = keras.Model(a, keras.layers.Dense(3, name="inner_dense")(a), name="inner")
    x = keras.Input((3,), name="features")
    y = {"output": inner(x), "head": keras.layers.Dense(2, name="head")(inner(x)),
         "twice": keras.layers.Dense(2, name="head")(inner(inner(x)))}[form]
    return keras.Model(x, y, name=f"outer_{form}")


@pytest.mark.parametrize("form", ["output", "head", "twice"])
def test_a_nested_model_called_on_the_outer_input_gives_the_keras_paths_json(keras, tmp_path, form):
    path = tmp_path / f"{form}.keras"
    _nested_on_the_outer_input(keras, form).save(path)
    by_keras, by_file = _both(load_model(path).model, open_stored(path), str(path))
    assert by_file == by_keras
    assert "inner_dense" in by_file


# ---------------------------------------------------------------- Keras 2 files


def _keras2_entry(item):
    """A Keras 3 config entry as Keras 2 wrote it: no module/build_config, dtype a string, list inbound_nodes."""
    if isinstance(item, list):
        return [_keras2_entry(value) for value in item]
    if not isinstance(item, dict) or item.get("class_name") == "__keras_tensor__":
        return item
    dropped = ("module", "registered_name", "build_config", "compile_config", "shared_object_id")
    # A wrapped layer keeps its module: Keras 3 cannot load a Bidirectional's inner layer without it.
    out = {key: (value if key in ("layer", "backward_layer") else _keras2_entry(value))
           for key, value in item.items() if key not in dropped}
    config = out.get("config")
    if isinstance(config, dict):
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = config["dtype"].get("config", {}).get("name", "float32")
        if out.get("class_name") == "InputLayer" and "batch_shape" in config:
            config["batch_input_shape"] = config.pop("batch_shape")
            config.pop("optional", None)
    if "inbound_nodes" in item:
        def refs(value, found):
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                found.append([*value["config"]["keras_history"], {}])
            elif isinstance(value, (dict, list)):
                for inner in (value.values() if isinstance(value, dict) else value):
                    refs(inner, found)
            return found

        out["inbound_nodes"] = [refs(node.get("args"), []) for node in item["inbound_nodes"]]
    return out


def keras2_h5(source, target, model_name):
    """Rewrite a Keras 3 ``.h5`` as Keras 2.4 wrote one: its config, and weights named ``layer/kernel:0``."""
    shutil.copy(source, target)
    with h5py.File(target, "r+") as handle:
        handle.attrs["model_config"] = json.dumps(_keras2_entry(json.loads(handle.attrs["model_config"])))
        handle.attrs["keras_version"] = "2.4.0"
        for group in handle["model_weights"].values():
            renamed = []
            for full in [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])]:
                parts = full.split("/")
                name = "/".join(parts[1:] if parts[0] == model_name else parts) + ":0"
                data = group[full][()]
                del group[full]
                group[name] = data
                renamed.append(name.encode())
            group.attrs["weight_names"] = renamed


@pytest.fixture(scope="module")
def keras2_files(keras, tmp_path_factory):
    """``{form: (keras 2 .h5 path, model)}``: a mixed conv/recurrent functional model and a 2.2-era Sequential."""
    folder = tmp_path_factory.mktemp("keras2")
    layers = keras.layers
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3), name="image")
    x = layers.DepthwiseConv2D(3, name="dw")(inp)
    x = layers.SeparableConv2D(4, 3, padding="same", name="sep")(x)
    x = layers.BatchNormalization(name="bn")(layers.Conv2D(5, 3, strides=2, name="conv")(x))
    x = layers.Bidirectional(layers.GRU(3, return_sequences=True, name="g"), name="bi")(
        layers.Reshape((4, 5), name="steps")(x))
    x = layers.TimeDistributed(layers.Dense(2, name="td_dense"), name="td")(x)
    encoder = keras.Sequential([layers.Dense(4, name="enc1"), layers.Dense(3, name="enc2")], name="enc")
    out = layers.Dense(2, name="head")(encoder(layers.Flatten(name="flat")(x)))
    mixed = keras.Model(inp, out, name="mixed")
    mixed.save(folder / "mixed3.h5")
    keras2_h5(folder / "mixed3.h5", folder / "mixed.h5", "mixed")
    sequential = keras.Sequential([keras.Input((5, 3)), layers.LSTM(4, name="lstm"), layers.Dense(2, name="out")],
                                  name="old")
    sequential.save(folder / "old3.h5")
    keras2_h5(folder / "old3.h5", folder / "old.h5", "old")
    with h5py.File(folder / "old.h5", "r+") as handle:  # Keras 2.2: no InputLayer, batch_input_shape, time_major
        config = json.loads(handle.attrs["model_config"])
        entries = [e for e in config["config"]["layers"] if e["class_name"] != "InputLayer"]
        entries[0]["config"].update(batch_input_shape=[None, 5, 3], time_major=False)
        config["config"]["layers"] = entries
        handle.attrs["model_config"] = json.dumps(config)
    return {"mixed": str(folder / "mixed.h5"), "old": str(folder / "old.h5")}


@pytest.mark.parametrize("form", ["mixed", "old"])
def test_keras2_h5_gives_the_keras_paths_json(keras2_files, form):
    path = keras2_files[form]
    loaded, stored = load_model(path, compile=False), open_stored(path)
    assert stored.notes == loaded.notes
    by_keras = json.dumps(analyze_model(loaded.model, path=path, notes=loaded.notes).to_dict(), indent=1)
    by_file = json.dumps(analyze_model(stored, path=path, notes=stored.notes).to_dict(), indent=1)
    assert by_file == by_keras
    assert stored.format == "h5"
    if form == "mixed":  # the GRU's MACs count its 4 timesteps, propagated from the input through the configs
        assert '"macs": 96' in by_file


# ---------------------------------------------------------------- no TensorFlow, no code

_NO_TF = """
import sys
from weightkit._common import run_cli
from weightkit.cli import cli
for argv in (sys.argv[1:5], sys.argv[5:]):
    if run_cli(cli, argv) != 0:
        sys.exit(1)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
print("IMPORTED", loaded, file=sys.stderr)
"""


def test_analyze_and_report_never_import_tensorflow(zoo_dir, tmp_path):
    """One process runs ``analyze --json`` on a CNN, then ``report`` on an MLP: neither imports TensorFlow."""
    cnn, mlp = zoo_path("residual_cnn", zoo_dir), zoo_path("sequential_mlp", zoo_dir)
    argv = ["analyze", cnn, "--json", str(tmp_path / "a.json"), "report", mlp, "-o", str(tmp_path / "report")]
    env = dict(os.environ, PYTHONPATH=str(REPOSITORY))
    done = subprocess.run([sys.executable, "-c", _NO_TF, *argv], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path), timeout=180, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "IMPORTED []"
    for form, document in (("residual_cnn", tmp_path / "a.json"), ("sequential_mlp", tmp_path / "report" /
                                                                    "analysis.json")):
        # include_bias=True: the commands' default (issue 29 item 12)
        by_keras = analyze_model(load_zoo(form, zoo_dir), path=zoo_path(form, zoo_dir), include_bias=True).to_dict()
        assert json.loads(document.read_text()) == json.loads(json.dumps(by_keras))


@pytest.fixture(scope="module")
def foreign_path(keras, tmp_path_factory):
    """A .keras with a Lambda whose code would create a marker file, and a layer class from outside Keras."""
    folder = tmp_path_factory.mktemp("foreign")
    marker = folder / "code-ran"
    function = eval(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]")  # the trap itself
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(5, name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(keras.layers.Lambda(function, name="trap")(hidden)))
    model.save(folder / "trap.keras")
    marker.unlink()
    path = folder / "foreign.keras"
    shutil.copy(folder / "trap.keras", path)
    _edit_config(path, lambda layer: layer.update(module="my_project.layers", registered_name="my_project>Out")
                 if layer["config"]["name"] == "out" else None)
    return str(path), marker


def _edit_config(path, change):
    """Rewrite a .keras archive's config.json, ``change(layer_entry)`` applied to each top-level layer."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    for layer in config["config"]["layers"]:
        change(layer)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_lambda_and_foreign_classes_are_listed_as_skipped_and_never_run(foreign_path):
    path, marker = foreign_path
    result = analyze_model(open_stored(path), path=path).to_dict()
    assert [layer["name"] for layer in result["layers"]] == ["hidden"]
    assert result["skipped"] == [
        {"name": "trap", "type": "Lambda",
         "reason": "Lambda layer: its code is stored in the file and is not run (weight analysis reads only data)"},
        {"name": "out", "type": "Dense", "params": 18,
         "reason": "custom class my_project>Out: its code is not run (weight analysis reads only data)"}]
    assert not marker.exists()


def test_weights_h5_beside_its_config(keras, zoo_dir, tmp_path):
    model = load_zoo("two_inputs", zoo_dir)
    model.save_weights(tmp_path / "m.weights.h5")
    (tmp_path / "m.config.json").write_text(model.to_json())
    stored = open_stored(tmp_path / "m.weights.h5")
    assert isinstance(stored, StoredModel) and stored.format == "weights"
    by_keras, by_file = _both(model, stored, "m")
    assert by_file == by_keras
    (tmp_path / "m.config.json").unlink()
    with pytest.raises(WeightkitError) as error:
        open_stored(tmp_path / "m.weights.h5")
    assert str(error.value) == (f"{tmp_path / 'm.weights.h5'}: a weights-only file needs the model's configuration "
                                "beside it; save model.to_json() as m.config.json next to it, or save the whole "
                                "model with model.save('model.keras').")


def test_a_deflated_archive_reads_the_same(zoo_dir, tmp_path):
    """Keras stores model.weights.h5 uncompressed (read in place); a re-zipped, deflated copy is inflated once."""
    import zipfile

    path = zoo_path("residual_cnn", zoo_dir)
    deflated = tmp_path / "deflated.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    by_file = analyze_model(open_stored(path), path="m").to_dict()
    assert analyze_model(open_stored(deflated), path="m").to_dict() == by_file
