"""The bad-input corpus, built from code: tiny models and a few bytes of data, good and bad.

The session fixture ``corpus`` in ``conftest.py`` builds it once; :mod:`refusal_checks` holds the checks
every case runs.
"""

import json
import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np

N_FEATURES, N_CLASSES = 8, 3


# --------------------------------------------------------------------------------------------------
# The corpus


def _write(path, data):
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


def _dense_model(keras, hidden=6, outputs=N_CLASSES, activation="softmax", name="tiny"):
    inputs = keras.Input((N_FEATURES,), name="x")
    x = keras.layers.Dense(hidden, activation="relu", name="hidden")(inputs)
    x = keras.layers.Dense(outputs, activation=activation, name="out")(x)
    model = keras.Model(inputs, x, name=name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy" if outputs > 1 else "binary_crossentropy",
                  metrics=["accuracy"])
    return model


def build_models(keras, folder):
    """Model files, good and bad. Returns {case: path}."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    paths = {}
    good = _dense_model(keras)
    paths["good"] = str(folder / "good.keras")
    good.save(paths["good"])
    good_bytes = Path(paths["good"]).read_bytes()
    with zipfile.ZipFile(paths["good"]) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}

    paths["empty file"] = _write(folder / "empty.keras", b"")
    paths["empty file .h5"] = _write(folder / "empty.h5", b"")
    paths["random bytes .keras"] = _write(folder / "random.keras", rng.bytes(700))
    paths["random bytes .h5"] = _write(folder / "random.h5", rng.bytes(700))
    paths["truncated .keras"] = _write(folder / "truncated.keras", good_bytes[: len(good_bytes) // 2])
    paths["zip without config.json"] = _zip(folder / "noconfig.keras",
                                            {k: v for k, v in members.items() if k != "config.json"})
    config = json.loads(members["config.json"])
    hidden = next(layer for layer in config["config"]["layers"] if layer["config"]["name"] == "hidden")
    hidden.update(class_name="WeirdDense", module="my_project.layers", registered_name="WeirdDense")
    paths["unknown layer class"] = _zip(folder / "unknown.keras", {**members, "config.json": json.dumps(config)})

    inputs = keras.Input((N_FEATURES,))
    x = keras.layers.Dense(4, name="hidden")(inputs)
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x)
    keras.Model(inputs, keras.layers.Dense(N_CLASSES, activation="softmax", name="out")(x)).save(
        folder / "lambda.keras")
    paths["Lambda layer"] = str(folder / "lambda.keras")

    good.save_weights(folder / "only.weights.h5")
    paths[".h5 weights, no config"] = str(shutil.move(folder / "only.weights.h5", folder / "weights.h5"))
    os.makedirs(folder / "folder.keras")
    paths["directory, not a file"] = str(folder / "folder.keras")
    paths["missing path"] = str(folder / "missing.keras")
    paths["path through a file"] = str(folder / "good.keras" / "model.keras")

    for case, value in (("NaN weights", np.nan), ("Inf weights", np.inf)):
        model = _dense_model(keras, name=case.split()[0].lower())
        kernel, bias = model.get_layer("hidden").get_weights()
        kernel[2, 1] = value
        model.get_layer("hidden").set_weights([kernel, bias])
        paths[case] = str(folder / f"{case.split()[0].lower()}.keras")
        model.save(paths[case])

    inputs = keras.Input((N_FEATURES,), name="x")
    model = keras.Model(inputs, keras.layers.Softmax(name="softmax")(keras.layers.Dropout(0.1)(inputs)),
                        name="no_weights")
    paths["no layer with weights"] = str(folder / "noweights.keras")
    model.save(paths["no layer with weights"])

    model = _dense_model(keras, hidden=1, outputs=1, activation="sigmoid", name="one_neuron")
    paths["one-neuron layers"] = str(folder / "oneneuron.keras")
    model.save(paths["one-neuron layers"])

    inputs = keras.Input((4, 2), name="sequence")
    x = keras.layers.SimpleRNN(4, name="rnn")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(N_CLASSES, activation="softmax", name="out")(x), name="rnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    paths["recurrent"] = str(folder / "rnn.keras")
    model.save(paths["recurrent"])
    paths.update(build_hostile_models(folder, members, good))
    return paths


def _deflated_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


def _forge_dataset(handle, name, shape):
    """Replace dataset ``name`` by a chunked one that declares ``shape`` and stores nothing."""
    del handle[name]
    handle.create_dataset(name, shape=shape, dtype="float32", chunks=(min(shape[0], 1024),) + tuple(shape[1:]))


def build_hostile_models(folder, members, good):
    """Model files made to exhaust memory or time (small on disk), or to slip code past safe mode."""
    import h5py

    paths = {}
    # 80 MiB of spaces inflate from under 400 KB: over the 64 MiB limit on config.json (Keras would parse it).
    paths["config.json bomb"] = _deflated_zip(folder / "configbomb.keras",
                                              {**members, "config.json": members["config.json"] + b" " * (80 << 20)})
    paths["weights bomb"] = _deflated_zip(folder / "weightsbomb.keras",
                                          {**members, "model.weights.h5": bytes(40 << 20)})
    paths["deeply nested config"] = _zip(folder / "deep.keras",
                                         {**members, "config.json": "[" * 100_000 + "]" * 100_000})
    forged = json.loads(members["config.json"])
    hidden = next(layer for layer in forged["config"]["layers"] if layer["config"]["name"] == "hidden")
    hidden["config"]["kernel_regularizer"] = {"module": "os", "class_name": "system", "config": {"command": "true"},
                                              "registered_name": "weightkit>DecorrelationRegularizer"}
    paths["forged weightkit class"] = _zip(folder / "forged.keras", {**members, "config.json": json.dumps(forged)})
    weights = folder / "forged.weights.h5"
    weights.write_bytes(members["model.weights.h5"])
    with h5py.File(weights, "r+") as handle:
        kernel = next(name for name in _datasets(handle) if handle[name].ndim == 2)
        _forge_dataset(handle, kernel, (8, 250_000))
    paths[".keras linked to /dev/zero"] = str(folder / "zero.keras")
    os.symlink("/dev/zero", paths[".keras linked to /dev/zero"])
    paths["weights declare more than stored"] = _zip(folder / "declared.keras",
                                                     {**members, "model.weights.h5": weights.read_bytes()})
    weights.unlink()
    legacy = folder / "declared.h5"
    good.save(legacy)
    with h5py.File(legacy, "r+") as handle:
        kernel = next(name for name in _datasets(handle) if handle[name].ndim == 2)
        _forge_dataset(handle, kernel, (975_000_000,))
    paths[".h5 dataset declares more than stored"] = str(legacy)
    with h5py.File(folder / "intconfig.h5", "w") as handle:
        handle.attrs["model_config"] = np.arange(5)
        handle.create_dataset("model_weights/w", data=np.zeros(3))
    paths[".h5 model_config is an int array"] = str(folder / "intconfig.h5")
    paths.update(_build_reaching_hdf5(folder, members, legacy))
    paths.update(_build_mismatched_weights(folder, members))
    return paths


def _edited_keras(path, members, edit=None, config=None):
    """A copy of the good ``.keras`` whose model.weights.h5 went through ``edit(handle)`` (and/or a new config)."""
    import h5py

    weights = Path(str(path) + ".weights.h5")
    weights.write_bytes(members["model.weights.h5"])
    if edit is not None:
        with h5py.File(weights, "r+") as handle:
            edit(handle)
    changed = {**members, "model.weights.h5": weights.read_bytes()}
    if config is not None:
        changed["config.json"] = json.dumps(config)
    weights.unlink()
    return _zip(path, changed)


def _build_reaching_hdf5(folder, members, legacy):
    """HDF5 weights that reach outside their file (issue 29 item 1) or loop back into it (item 7).

    ``legacy`` is a legacy ``.h5`` of the good model (its kernel forged: only its path matters here).
    """
    import h5py

    kernel = "layers/dense/vars/0"  # the hidden layer's (8, 6) kernel
    fifo = folder / "weights.fifo"
    os.mkfifo(fifo)  # opening it waits for a writer forever

    def external_storage(target, size):
        def edit(handle):
            del handle[kernel]
            handle.create_dataset(kernel, shape=(8, 6), dtype="float32", external=[(target, 0, size)])
        return edit

    def replace(link):
        def edit(handle):
            del handle[kernel]
            handle[kernel] = link
        return edit

    def virtual(handle):
        layout = h5py.VirtualLayout(shape=(8, 6), dtype="float32")
        layout[:6, :3] = h5py.VirtualSource(str(legacy), "model_weights/out/out/kernel", shape=(6, 3))
        del handle[kernel]
        handle.create_virtual_dataset(kernel, layout)

    def cycle(handle):
        handle["layers/dense/vars/loop"] = handle["layers"]

    paths = {
        "HDF5 external storage in /etc/passwd": _edited_keras(folder / "passwd.keras", members,
                                                              external_storage("/etc/passwd", 192)),
        "HDF5 external link to a FIFO": _edited_keras(folder / "extlink.keras", members,
                                                      replace(h5py.ExternalLink(str(fifo), "/kernel"))),
        "HDF5 soft link": _edited_keras(folder / "softlink.keras", members,
                                        replace(h5py.SoftLink("/layers/dense_1/vars/0"))),
        "HDF5 virtual dataset": _edited_keras(folder / "virtual.keras", members, virtual),
        "HDF5 link cycle": _edited_keras(folder / "cycle.keras", members, cycle),
    }
    fifo_h5 = folder / "fifo.h5"
    shutil.copy(legacy, fifo_h5)
    with h5py.File(fifo_h5, "r+") as handle:
        name = "model_weights/out/out/kernel"
        del handle[name]
        handle.create_dataset(name, shape=(6, 3), dtype="float32", external=[(str(fifo), 0, 72)])
    paths[".h5 external storage in a FIFO"] = str(fifo_h5)
    return paths


def _build_mismatched_weights(folder, members):
    """Weights that do not fit the configuration beside them (issue 29 items 6 and 7)."""

    def dataset(shape, dtype):
        def edit(handle):
            del handle["layers/dense/vars/0"]
            handle.create_dataset("layers/dense/vars/0", data=np.zeros(shape, dtype=dtype))
        return edit

    config = json.loads(members["config.json"])
    wider = json.loads(members["config.json"].decode().replace('"units": 6', '"units": 7'))
    renamed = json.loads(members["config.json"].decode().replace('"hidden"', '"renamed"'))
    assert wider != config and renamed != config
    paths = {
        "3-D Dense kernel": _edited_keras(folder / "kernel3d.keras", members, dataset((8, 6, 1), np.float32)),
        "compound-dtype kernel": _edited_keras(folder / "compound.keras", members,
                                               dataset((8, 6), [("re", "<f4"), ("im", "<f4")])),
        "complex kernel": _edited_keras(folder / "complex.keras", members, dataset((8, 6), np.complex64)),
        "kernel shape differs from units": _edited_keras(folder / "wider.keras", members, config=wider),
        "layer name differs from its weights": _edited_keras(folder / "renamed.keras", members, config=renamed),
    }
    duplicate = folder / "duplicate.keras"
    other = json.loads(members["config.json"])
    other["config"]["name"] = "other"
    with zipfile.ZipFile(duplicate, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile warns of the duplicate name: the point here
            archive.writestr("config.json", json.dumps(other))
    paths["zip with two config.json"] = str(duplicate)
    return paths


def _datasets(handle):
    import h5py

    found = []
    handle.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
    return found


def _png(path, size=4):
    from PIL import Image

    Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(path)


def build_data(folder):
    """Data files, good and bad, for the models above. Returns {case: path}."""
    rng = np.random.default_rng(1)
    paths = {}
    x = rng.normal(size=(40, N_FEATURES)).astype(np.float32)
    y = rng.integers(0, N_CLASSES, size=40)
    paths["good"] = str(folder / "good.npz")
    np.savez(paths["good"], x=x, y=y)
    paths["good binary"] = str(folder / "binary.npz")
    np.savez(paths["good binary"], x=x, y=y % 2)
    paths["empty file"] = _write(folder / "empty.npz", b"")
    paths["random bytes .npz"] = _write(folder / "random.npz", rng.bytes(700))
    paths["wrong dimensions"] = paths["good"]  # 2-D data, given to the recurrent model
    paths["x and y lengths differ"] = str(folder / "lengths.npz")
    np.savez(paths["x and y lengths differ"], x=x, y=y[:-3])
    paths["labels outside the outputs"] = str(folder / "labels.npz")
    np.savez(paths["labels outside the outputs"], x=x, y=y + 5)
    paths["empty dataset"] = str(folder / "nothing.npz")
    np.savez(paths["empty dataset"], x=np.zeros((0, N_FEATURES), np.float32), y=np.zeros(0, np.int64))
    header = ",".join(f"f{i}" for i in range(N_FEATURES)) + ",label\n"
    rows = [",".join(f"{v:.3f}" for v in row) + f",{label}\n" for row, label in zip(x[:10], y[:10])]
    rows[4] = rows[4].replace(rows[4].split(",")[3], "tall", 1)
    paths["text in a numeric CSV column"] = _write(folder / "text.csv", (header + "".join(rows)).encode())
    os.makedirs(folder / "no_images" / "cats")
    _write(folder / "no_images" / "cats" / "notes.txt", b"not an image")
    paths["image folder without images"] = str(folder / "no_images")
    os.makedirs(folder / "corrupt_images" / "cats")
    os.makedirs(folder / "corrupt_images" / "dogs")
    _png(folder / "corrupt_images" / "cats" / "a.png")
    _png(folder / "corrupt_images" / "dogs" / "b.png")
    _write(folder / "corrupt_images" / "dogs" / "broken.png", b"\x89PNG\r\n\x1a\n" + rng.bytes(60))
    paths["corrupt image"] = str(folder / "corrupt_images")
    paths["missing path"] = str(folder / "missing.npz")
    paths["path through a file"] = str(folder / "good.npz" / "data.npz")
    paths["pickled arrays"] = str(folder / "pickled.npz")
    np.savez(paths["pickled arrays"], x=np.array([object()] * 3, dtype=object), y=np.arange(3))
    paths.update(build_hostile_data(folder, x, y))
    paths.update(build_token_data(folder))
    return paths


def _npy_bytes(array, declared_shape=None):
    import io

    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False,
              "shape": declared_shape or array.shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + array.tobytes()


def _truncated_member(path, x, y):
    """An .npz whose x.npy inflates to half its data, while its header and the zip directory declare it all."""
    import struct

    whole = _npy_bytes(x)
    _deflated_zip(path, {"x.npy": whole[: len(whole) // 2], "y.npy": _npy_bytes(y)})
    data = bytearray(Path(path).read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo("x.npy").header_offset
    struct.pack_into("<I", data, local + 22, len(whole))  # the local header's uncompressed size
    central = data.find(b"PK\x01\x02")
    while central >= 0:  # the central directory's entry for x.npy
        length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46: central + 46 + length] == b"x.npy":
            struct.pack_into("<I", data, central + 24, len(whole))
        central = data.find(b"PK\x01\x02", central + 4)
    Path(path).write_bytes(bytes(data))
    return str(path)


def build_hostile_data(folder, x, y):
    """Data files made to exhaust memory or time, small on disk."""
    paths = {"npz bomb": str(folder / "bomb.npz")}
    np.savez_compressed(paths["npz bomb"], x=np.zeros((40 << 20) // 4 // N_FEATURES * N_FEATURES, np.float32)
                        .reshape(-1, N_FEATURES), y=np.zeros((40 << 20) // 4 // N_FEATURES, np.int64))
    paths["npz header declares more than stored"] = _zip(
        folder / "declared.npz", {"x.npy": _npy_bytes(x, (10**6, N_FEATURES)), "y.npy": _npy_bytes(y)})
    paths["npz header declares 1e12 elements"] = _zip(
        folder / "huge.npz", {"x.npy": _npy_bytes(x, (10**12 // N_FEATURES, N_FEATURES)), "y.npy": _npy_bytes(y)})
    paths["truncated .npy member"] = _truncated_member(folder / "truncated.npz", x, y)
    header = ",".join(f"f{i}" for i in range(N_FEATURES)) + ",label\n"
    row = ",".join("0.5" for _ in range(N_FEATURES)) + ",1\n"
    paths["CSV field over 131072 characters"] = _write(folder / "longfield.csv",
                                                       (header + row + "1" * 140_000 + row[1:]).encode())
    for suffix in ("csv", "npz"):
        paths[f".{suffix} linked to /dev/zero"] = str(folder / f"zero.{suffix}")
        os.symlink("/dev/zero", paths[f".{suffix} linked to /dev/zero"])
    paths[".npz that is a FIFO"] = str(folder / "pipe.npz")
    os.mkfifo(paths[".npz that is a FIFO"])  # opening it would wait for a writer forever
    # 1,000,000 columns and three rows (8 MB): a reader that sizes its blocks by rows x columns wants 32 GB.
    columns = 10**6
    paths["CSV a million columns wide"] = _write(folder / "wide.csv", ("c," * (columns - 1) + "label\n" + (
        "0," * (columns - 1) + "1\n") * 3).encode())
    return paths


#: Vocabulary of the corpus' token model (tests/test_bad_inputs.py builds it: ids -> Embedding -> Dense).
N_TOKENS, N_STEPS = 20, 5


def build_token_data(folder):
    """Token ids for a model whose Embedding has :data:`N_TOKENS` rows: in range, too large, negative."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, N_CLASSES, size=40)
    ids = rng.integers(0, N_TOKENS, size=(40, N_STEPS)).astype(np.int32)
    paths = {"good token ids": str(folder / "tokens.npz")}
    np.savez(paths["good token ids"], x=ids, y=y)
    too_large, negative = ids.copy(), ids.copy()
    too_large[7, 2] = N_TOKENS + 29
    negative[3, 1] = -3
    paths["token ids beyond the vocabulary"] = str(folder / "bigids.npz")
    np.savez(paths["token ids beyond the vocabulary"], x=too_large, y=y)
    paths["negative token ids"] = str(folder / "negids.npz")
    np.savez(paths["negative token ids"], x=negative, y=y)
    return paths
