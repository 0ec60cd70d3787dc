"""Loading models: formats, safe mode, and one clear line for every bad file."""

import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from weightkit.analysis import WeightkitError, is_saved_model_dir, load_model

_UNSAFE = "whose code would run while loading; refused in safe mode: pass --unsafe (unsafe=True) only if you trust the file."


def _tiny_model(keras, name="tiny"):
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(3, activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(2, activation="softmax", name="out")(hidden)
    model = keras.Model(inputs, outputs, name=name)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    return model


@pytest.fixture(scope="module")
def saved(keras, tmp_path_factory):
    """A tiny compiled model saved as .keras and .h5, plus its weights. Read-only."""
    folder = tmp_path_factory.mktemp("loading")
    model = _tiny_model(keras)
    paths = {"keras": str(folder / "tiny.keras"), "h5": str(folder / "tiny.h5")}
    model.save(paths["keras"])
    model.save(paths["h5"])
    return model, paths


@pytest.fixture(scope="module")
def lambda_paths(keras, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lambda")
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    outputs = keras.layers.Lambda(lambda t: t * 2.0, name="double")(hidden)
    model = keras.Model(inputs, outputs)
    paths = {"keras": str(folder / "lambda.keras"), "h5": str(folder / "lambda.h5")}
    for path in paths.values():
        model.save(path)
    return paths


@pytest.fixture(scope="module")
def custom_paths(keras, tmp_path_factory):
    """Models with a custom layer, a custom initializer and a custom activation (not registered)."""
    folder = tmp_path_factory.mktemp("custom")

    class AddOne(keras.layers.Layer):
        def call(self, x):
            return x + 1.0

    class ZerosLike(keras.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return keras.ops.zeros(shape, dtype=dtype)

    def my_relu(x):
        return keras.ops.relu(x)

    inputs = keras.Input((4,))
    models = {
        "layer": keras.Model(inputs, AddOne(name="add_one")(keras.layers.Dense(3, name="d")(inputs))),
        "initializer": keras.Model(inputs, keras.layers.Dense(3, kernel_initializer=ZerosLike(), name="dz")(inputs)),
        "activation": keras.Model(inputs, keras.layers.Dense(3, activation=my_relu, name="dact")(inputs)),
    }
    paths = {}
    for kind, model in models.items():
        paths[kind] = str(folder / f"{kind}.keras")
        model.save(paths[kind])
    return paths


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_round_trip_keeps_the_weights(saved, fmt):
    model, paths = saved
    loaded = load_model(paths[fmt])
    assert loaded.format == fmt and loaded.path == paths[fmt]
    assert [layer.name for layer in loaded.model.layers] == [layer.name for layer in model.layers]
    for original, copy in zip(model.weights, loaded.model.weights):
        np.testing.assert_array_equal(np.asarray(original), np.asarray(copy))


def test_keras_file_restores_its_training_settings(saved):
    loaded = load_model(saved[1]["keras"])
    assert loaded.compiled and loaded.notes == []
    assert load_model(saved[1]["keras"], compile=False).compiled is False


@pytest.mark.parametrize("fmt, name", [("h5", "model.bin"), ("keras", "model.zip"), ("h5", "looks_like.keras"),
                                       ("keras", "MODEL.KERAS"), ("h5", "MODEL.H5")])
def test_format_comes_from_the_content_not_the_name(saved, tmp_path, fmt, name):
    path = tmp_path / name
    shutil.copy(saved[1][fmt], path)
    loaded = load_model(path)
    assert loaded.format == fmt and loaded.model.count_params() == saved[0].count_params()


def test_keras2_h5_with_lr_loads_without_compile_and_says_so(saved, tmp_path):
    # Keras 2 wrote the optimizer's learning rate as "lr" and stamped keras_version 2.x; Keras 3
    # refuses to compile such a file. Simulated from a Keras 3 .h5 by rewriting its attributes.
    import h5py

    path = tmp_path / "keras2.h5"
    shutil.copy(saved[1]["h5"], path)
    with h5py.File(path, "r+") as handle:
        training = json.loads(handle.attrs["training_config"])
        optimizer = training["optimizer_config"]["config"]
        optimizer["lr"] = optimizer.pop("learning_rate")
        handle.attrs["training_config"] = json.dumps(training)
        handle.attrs["keras_version"] = "2.4.0"
    loaded = load_model(path)
    assert loaded.compiled is False
    assert loaded.notes == [
        "loaded without its training settings (optimizer, loss): Keras 3 rejected them "
        "(Argument(s) not recognized: {'lr': 0.0010000000474974513})"]
    for original, copy in zip(saved[0].weights, loaded.model.weights):
        np.testing.assert_array_equal(np.asarray(original), np.asarray(copy))


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_lambda_layer_refused_in_safe_mode_and_accepted_when_unsafe(lambda_paths, fmt):
    path = lambda_paths[fmt]
    with pytest.raises(WeightkitError) as info:
        load_model(path)
    assert str(info.value) == f"{path}: layer 'double' is a Lambda layer, {_UNSAFE}"
    loaded = load_model(path, unsafe=True)
    out = loaded.model.predict(np.ones((1, 4), dtype=np.float32), verbose=0)
    hidden = loaded.model.get_layer("hidden")
    expected = 2.0 * (np.ones((1, 4)) @ hidden.kernel.numpy() + hidden.bias.numpy())
    np.testing.assert_allclose(out, expected, rtol=1e-5)


@pytest.mark.parametrize("kind, message", [
    ("layer", "layer 'add_one' is an unknown custom object (AddOne)"),
    ("initializer", "layer 'dz' uses an unknown custom object (ZerosLike)"),
    ("activation", "layer 'dact' uses an unknown custom object (my_relu)"),
])
def test_unknown_custom_objects_refused_naming_the_layer(custom_paths, kind, message):
    path = custom_paths[kind]
    with pytest.raises(WeightkitError) as info:
        load_model(path)
    assert str(info.value) == f"{path}: {message}, {_UNSAFE}"
    # With --unsafe Keras tries, but the class is not in this process: still one clear line.
    with pytest.raises(WeightkitError) as info:
        load_model(path, unsafe=True)
    assert str(info.value) == (
        f"{path}: Keras could not load the model: {message}, which is not registered in this Python "
        "process; load it in Python with custom_objects=... or keras.saving.register_keras_serializable, "
        "then model.save() without it.")


def test_registered_custom_class_loads_in_safe_mode(keras, tmp_path):
    @keras.saving.register_keras_serializable(package="weightkit_test_loading")
    class Shift(keras.layers.Layer):
        def call(self, x):
            return x + 0.5

    inputs = keras.Input((3,))
    path = str(tmp_path / "registered.keras")
    keras.Model(inputs, Shift(name="shift")(inputs)).save(path)
    loaded = load_model(path)
    assert type(loaded.model.get_layer("shift")).__name__ == "Shift"


def test_nested_and_shared_layers_survive_loading(keras, tmp_path):
    from weightkit.analysis import walk_layers

    inner = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, name="a")], name="inner")
    inputs = keras.Input((5,))
    shared = keras.layers.Dense(5, name="shared")
    model = keras.Model(inputs, inner(shared(shared(inputs))))
    path = str(tmp_path / "nested.keras")
    model.save(path)
    names = [layer.name for layer in walk_layers(load_model(path).model) if layer.weights]
    assert names == ["shared", "a"]


def _write(path, data):
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


@pytest.fixture(scope="module")
def bad_files(saved, keras, tmp_path_factory):
    """Each bad input: {case: (path, expected message)}."""
    folder = tmp_path_factory.mktemp("bad")
    model, paths = saved
    rng = np.random.default_rng(0)
    keras_bytes = open(paths["keras"], "rb").read()
    h5_bytes = open(paths["h5"], "rb").read()
    cases = {}

    def add(case, path, message):
        cases[case] = (str(path), message.format(path=path))

    add("missing", folder / "nope.keras", "{path}: no such file; check the path to the model (.keras or .h5).")
    add("empty", _write(folder / "empty.keras", b""), "{path}: is an empty file, not a model; save the model again.")
    add("random .keras", _write(folder / "random.keras", rng.bytes(512)),
        "{path}: is not a .keras zip archive (unrecognized content); check that the file is a saved Keras "
        "model and was copied completely.")
    add("random .h5", _write(folder / "random.h5", rng.bytes(512)),
        "{path}: is not an HDF5 file (unrecognized content); check that the file is a saved Keras model and "
        "was copied completely.")
    add("random other", _write(folder / "model.pt", rng.bytes(512)),
        "{path}: is not a .keras or .h5 model file (unrecognized content); check that the file is a saved "
        "Keras model and was copied completely.")
    add("truncated .keras", _write(folder / "truncated.keras", keras_bytes[: len(keras_bytes) // 2]),
        "{path}: corrupt or truncated .keras archive (File is not a zip file); copy or save the model again.")
    add("no config.json", _zip(folder / "noconfig.keras", {"metadata.json": "{}"}),
        "{path}: zip archive without config.json, so not a Keras model file; save the model with "
        "model.save('model.keras').")
    add("config not JSON", _zip(folder / "badjson.keras", {"config.json": '{"class_name": '}),
        "{path}: corrupt or truncated .keras archive (Expecting value: line 1 column 16 (char 15)); copy or "
        "save the model again.")
    add("config not a model", _zip(folder / "notmodel.keras", {"config.json": '{"hello": 1}'}),
        "{path}: config.json is not a Keras model configuration (no class_name); save the model with "
        "model.save('model.keras').")
    add("member escapes", _zip(folder / "escape.keras", {"config.json": "{}", "../evil.txt": "x"}),
        "{path}: archive member '../evil.txt' points outside the archive; refusing to read it. Re-save the "
        "model with model.save('model.keras').")
    add("absolute member", _zip(folder / "absolute.keras", {"config.json": "{}", "/etc/evil": "x"}),
        "{path}: archive member '/etc/evil' points outside the archive; refusing to read it. Re-save the "
        "model with model.save('model.keras').")
    # A byte flipped inside a stored (uncompressed) member: the zip's CRC check catches it.
    stored = folder / "stored.keras"
    with zipfile.ZipFile(paths["keras"]) as source, zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
    data = bytearray(stored.read_bytes())
    data[data.find(b'"class_name"') + 2] ^= 1
    add("bad CRC", _write(folder / "crc.keras", bytes(data)),
        "{path}: corrupt or truncated .keras archive (CRC check failed); copy or save the model again.")
    # The archive is fine but its weights are not Keras weights.
    with zipfile.ZipFile(paths["keras"]) as source:
        members = {name: source.read(name) for name in source.namelist()}
    members["model.weights.h5"] = b"not weights"
    add("bad weights", _zip(folder / "badweights.keras", members),
        "{path}: Keras " + keras_version() + " could not load the model (OSError: Unable to synchronously open "
        "file (file signature not found)); if an older Keras wrote it, load it there and save it again with "
        "model.save('model.keras'), or report the layer the error names.")
    add("truncated .h5", _write(folder / "truncated.h5", h5_bytes[: len(h5_bytes) // 2]),
        f"{{path}}: corrupt or truncated HDF5 file (Unable to synchronously open file (truncated file: eof = "
        f"{len(h5_bytes) // 2}, sblock->base_addr = 0, stored_eof = {len(h5_bytes)})); copy or save the model again.")
    weights = str(folder / "only.weights.h5")
    model.save_weights(weights)
    add("weights only", shutil.copy(weights, folder / "weights.h5"),
        "{path}: HDF5 file with weights but no model configuration (written by save_weights?); build the "
        "model in code, call load_weights, then model.save('model.keras').")
    saved_model = folder / "saved_model_dir"
    model.export(str(saved_model), verbose=False)
    add("SavedModel", saved_model,
        "{path}: is a TensorFlow SavedModel directory, which Keras 3 cannot load as a model; load it where it "
        "was made and save it with model.save('model.keras').")
    import h5py

    with h5py.File(folder / "deep.h5", "w") as handle:
        handle.attrs["model_config"] = "[" * 100_000 + "]" * 100_000
    add("deep JSON .h5", str(folder / "deep.h5"),
        "{path}: its model configuration nests objects more than 200 deep (a forged file?); refusing it. "
        "Re-save the model with model.save('model.keras').")
    with h5py.File(folder / "bytes_array.h5", "w") as handle:
        handle.attrs["model_config"] = np.frombuffer(b'{"class_name": "Sequential"}', np.uint8)
    add("model_config bytes array .h5", str(folder / "bytes_array.h5"),
        "{path}: its model_config attribute is ndarray data, not JSON text, so this is not a Keras model file; "
        "save the model again with model.save('model.keras').")
    os.makedirs(folder / "plain_dir")
    add("directory", folder / "plain_dir",
        "{path}: is a directory, not a model file; give the path of a .keras or .h5 file.")
    return cases


BAD_CASES = ["missing", "empty", "random .keras", "random .h5", "random other", "truncated .keras",
             "no config.json", "config not JSON", "config not a model", "member escapes", "absolute member",
             "bad CRC", "bad weights", "truncated .h5", "weights only", "SavedModel", "directory", "deep JSON .h5",
             "model_config bytes array .h5"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_files_give_one_line_naming_the_file(bad_files, case):
    path, message = bad_files[case]
    with pytest.raises(WeightkitError) as info:
        load_model(path)
    assert str(info.value) == message
    assert "\n" not in str(info.value)


def test_saved_model_directory_is_recognized(bad_files):
    assert is_saved_model_dir(bad_files["SavedModel"][0])
    assert not is_saved_model_dir(bad_files["directory"][0])


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(saved, tmp_path):
    path = tmp_path / "locked.keras"
    shutil.copy(saved[1]["keras"], path)
    os.chmod(path, 0)
    try:
        with pytest.raises(WeightkitError) as info:
            load_model(path)
    finally:
        os.chmod(path, 0o600)
    assert str(info.value) == f"{path}: cannot be read (permission denied); fix its permissions."


def test_inputs_are_never_modified(saved, tmp_path):
    path = tmp_path / "copy.keras"
    shutil.copy(saved[1]["keras"], path)
    before = (path.read_bytes(), os.stat(path).st_mtime_ns)
    load_model(path)
    assert (path.read_bytes(), os.stat(path).st_mtime_ns) == before
    assert sorted(os.listdir(tmp_path)) == ["copy.keras"]


def keras_version():
    import keras

    return keras.__version__


def _keras2_sequential_h5(keras, folder, time_major=False):
    """A Sequential .h5 as Keras 2.2-2.5 wrote it: no InputLayer, batch_input_shape and time_major on the LSTM."""
    import h5py

    model = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, name="lstm"), keras.layers.Dense(2, name="out")])
    reference = str(folder / "keras3.h5")
    model.save(reference)
    legacy = folder / "keras2.h5"
    legacy.write_bytes(open(reference, "rb").read())
    with h5py.File(legacy, "r+") as handle:
        config = json.loads(handle.attrs["model_config"])
        layers = [layer for layer in config["config"]["layers"] if layer["class_name"] != "InputLayer"]
        layers[0]["config"].update(batch_input_shape=[None, 5, 3], time_major=time_major)
        for layer in layers:
            for key in ("module", "registered_name", "build_config"):
                layer.pop(key, None)
        config["config"]["layers"] = layers
        handle.attrs["model_config"] = json.dumps(config)
    return model, str(legacy)


def test_a_keras2_lstm_sequential_loads_with_notes_and_computes_the_same(keras, tmp_path):
    model, legacy = _keras2_sequential_h5(keras, tmp_path)
    before = open(legacy, "rb").read()
    loaded = load_model(legacy)
    assert loaded.notes == [
        "a Keras 2 file: dropped time_major from layer 'lstm' (Keras 3 does not take it; the model computes the same)",
        "a Keras 2 Sequential without an InputLayer: built from the batch_input_shape of layer 'lstm'",
        "loaded without its training settings (a repaired Keras 2 configuration)"]
    x = np.random.default_rng(0).normal(size=(6, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.model.predict(x, verbose=0), model.predict(x, verbose=0))
    assert open(legacy, "rb").read() == before  # the input is only read
    from weightkit.analysis.structure.graph import ModelGraph

    assert [len(ModelGraph(loaded.model).nodes_of(layer)) for layer in loaded.model.layers] == [1, 1]


def test_a_keras2_time_major_model_is_refused_with_the_reason(keras, tmp_path):
    _, legacy = _keras2_sequential_h5(keras, tmp_path, time_major=True)
    with pytest.raises(WeightkitError) as error:
        load_model(legacy)
    assert str(error.value) == (f"{legacy}: layer 'lstm' was saved with time_major=True, which Keras 3 cannot run "
                                "(Keras 3 recurrent layers are always batch-major); save the model with "
                                "time_major=False in the Keras that wrote it.")
