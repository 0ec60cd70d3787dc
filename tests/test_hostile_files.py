"""Hostile files cost seconds and little memory: each is refused from what it declares, before it is read.

The files are the bad-input corpus's (tests/bad_inputs_corpus.py: ``build_hostile_models``,
``build_hostile_data``), small on disk. Each command runs in a child process (a fresh
``python -m weightkit``) under a small wrapper process that reads the command's peak resident
memory with ``resource.getrusage(RUSAGE_CHILDREN)``, so no other child of the test process is
counted. The limits are generous for a 2-core machine: importing
TensorFlow alone takes about 640 MB and 6 s (NOTES.md); a bomb inflated or a forged shape
allocated takes gigabytes.
"""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from refusal_checks import MODEL_COMMANDS, _command_argv, _root, check_refused

#: Peak resident memory of one command, bytes; wall time, seconds.
MEMORY_LIMIT = 1.5e9
TIME_LIMIT = 30.0

MODEL_CASES = ["config.json bomb", "weights bomb", "deeply nested config", "weights declare more than stored",
               ".h5 dataset declares more than stored", "HDF5 external storage in /etc/passwd",
               "HDF5 external link to a FIFO", ".h5 external storage in a FIFO"]
DATA_CASES = ["npz bomb", "npz header declares more than stored", ".csv linked to /dev/zero"]


_WRAPPER = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps([done.returncode, done.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))
"""


def _measured(argv):
    """Run ``python -m weightkit argv`` in a child; its status, stderr, seconds and peak RSS in bytes."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, sys.executable, "-m", "weightkit", *map(str, argv)],
                          env=env, capture_output=True, text=True, timeout=4 * TIME_LIMIT, check=True)
    seconds = time.monotonic() - start
    status, err, peak = json.loads(done.stdout)  # ru_maxrss is in kilobytes on Linux
    return status, err, seconds, peak


def _check(argv, path):
    status, err, seconds, peak = _measured(argv)
    lines = err.splitlines()
    assert status == 2, err[-2000:]
    assert len(lines) == 1 and path in lines[0] and "Traceback" not in err, err[-2000:]
    assert seconds < TIME_LIMIT, (seconds, lines)
    assert peak < MEMORY_LIMIT, (peak, lines)


@pytest.mark.parametrize("case", MODEL_CASES)
def test_hostile_model_is_refused_fast_and_small(corpus, tmp_path, case):
    models, _ = corpus
    _check(["analyze", models[case], "--json", tmp_path / "a.json"], models[case])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("case", DATA_CASES)
def test_hostile_data_is_refused_fast_and_small(corpus, tmp_path, case):
    models, data = corpus
    _check(["analyze", models["good"], "--data", data[case], "--json", tmp_path / "a.json"], data[case])
    assert os.listdir(tmp_path) == []


def test_a_forged_dense_60000_is_refused_before_keras_builds_it(keras, tmp_path):
    """24 KB declaring Dense(60000) on a 60000-wide input (14 GiB of kernel): refused by its stored size."""
    import zipfile

    import h5py
    from bad_inputs_corpus import _datasets, _forge_dataset

    inputs = keras.Input((6,), name="x")
    keras.Model(inputs, keras.layers.Dense(5, name="wide")(inputs)).save(tmp_path / "small.keras")
    with zipfile.ZipFile(tmp_path / "small.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    text = members["config.json"].decode().replace("6]", "60000]").replace('"units": 5', '"units": 60000')
    weights = tmp_path / "w.h5"
    weights.write_bytes(members["model.weights.h5"])
    with h5py.File(weights, "r+") as handle:
        _forge_dataset(handle, next(n for n in _datasets(handle) if handle[n].ndim == 2), (60000, 60000))
    path = tmp_path / "forged.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in {**members, "config.json": text, "model.weights.h5": weights.read_bytes()}.items():
            archive.writestr(name, data)
    assert '"units": 60000' in text and os.path.getsize(path) < 64_000
    out = tmp_path / "out"
    out.mkdir()
    _check(["analyze", path, "--json", out / "a.json"], str(path))


def test_a_dense_60000_with_no_weights_stored_is_refused_before_keras_builds_it(keras, tmp_path):
    """The same declaration with the weights file of the small model: refused from the config's build shapes."""
    import zipfile

    inputs = keras.Input((6,), name="x")
    keras.Model(inputs, keras.layers.Dense(5, name="wide")(inputs)).save(tmp_path / "small.keras")
    with zipfile.ZipFile(tmp_path / "small.keras") as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    text = members["config.json"].decode().replace("6]", "60000]").replace('"units": 5', '"units": 60000')
    path = tmp_path / "forged.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in {**members, "config.json": text}.items():
            archive.writestr(name, data)
    out = tmp_path / "out"
    out.mkdir()
    _check(["analyze", path, "--json", out / "a.json"], str(path))
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.files.loading import read_model_config

    with pytest.raises(WeightkitError) as info:
        read_model_config(str(path))
    assert str(info.value) == (
        f"{path}: layer 'wide' (Dense) declares 3,600,060,000 parameters, and the model 3,600,060,000 in all, but the "
        "file stores 140 bytes of weights; refusing to build it (Keras would allocate 13.4 GiB first): the file is "
        "truncated or forged, save the model again with model.save('model.keras').")


# --------------------------------------------------------------------------------------------------
# HDF5 that reaches outside its file (issue 29 item 1), or loops (item 7): every command, before a byte is read

_RESAVE = "save the model again with model.save('model.keras')."
_FOLLOW = "Keras never writes links, so refusing to follow it (a forged file?): " + _RESAVE
REACHING = {
    "HDF5 external storage in /etc/passwd": "{path}: model.weights.h5:layers/dense/vars/0 keeps its values in other "
                                            "files ('/etc/passwd': HDF5 external storage); refusing to read them (a "
                                            "forged file?): " + _RESAVE,
    "HDF5 external link to a FIFO": "{path}: model.weights.h5:layers/dense/vars/0 is an external link to "
                                    "{folder}/weights.fifo:/kernel; " + _FOLLOW,
    "HDF5 soft link": "{path}: model.weights.h5:layers/dense/vars/0 is a soft link to /layers/dense_1/vars/0; "
                      + _FOLLOW,
    "HDF5 virtual dataset": "{path}: model.weights.h5:layers/dense/vars/0 is a virtual dataset (its values are mapped "
                            "from other files); refusing to read it (a forged file?): " + _RESAVE,
    "HDF5 link cycle": "{path}: model.weights.h5:layers/dense/vars/loop links back to its ancestor 'layers' (a link "
                       "cycle, which Keras never writes); refusing to walk it (a forged file?): " + _RESAVE,
    ".h5 external storage in a FIFO": "{path}: model_weights/out/out/kernel keeps its values in other files "
                                      "('{folder}/weights.fifo': HDF5 external storage); refusing to read them (a "
                                      "forged file?): " + _RESAVE,
    "zip with two config.json": "{path}: archive holds 2 members named 'config.json'; Keras would read one and ignore "
                                "the others, so which model this is cannot be told (a forged file?). Re-save the "
                                "model with model.save('model.keras').",
}

_APART = "the configuration and the weights do not belong together: " + _RESAVE
_DAMAGED = "the file is damaged or forged: " + _RESAVE
#: Weights that do not fit their configuration (items 6 and 7): refused by weight analysis, which builds nothing.
#: (The commands that load the model through Keras get Keras' own check.)
MISMATCHED = {
    "3-D Dense kernel": "{path}: layer 'hidden' (Dense): its stored kernel has shape (8, 6, 1) but its configuration "
                        "implies (8, 6); " + _APART,
    "kernel shape differs from units": "{path}: layer 'hidden' (Dense): its stored kernel has shape (8, 6) but its "
                                       "configuration implies (8, 7); " + _APART,
    "layer name differs from its weights": "{path}: layer 'renamed' (Dense) has no weights in the file: its weights "
                                           "group layers/dense was saved for a layer named 'hidden'; " + _APART,
    "compound-dtype kernel": "{path}: layer 'hidden' (Dense): its stored kernel is compound data (fields 're', 'im'), "
                             "where Keras stores real numbers; " + _DAMAGED,
    "complex kernel": "{path}: layer 'hidden' (Dense): its stored kernel is complex64 data, where Keras stores real "
                      "numbers; " + _DAMAGED,
}


@pytest.mark.parametrize("command", MODEL_COMMANDS)
@pytest.mark.parametrize("case", list(REACHING))
def test_hdf5_reaching_outside_its_file_is_refused_by_every_command(capsys, corpus, tmp_path, case, command):
    models, data = corpus
    path = models[case]
    argv = _command_argv(command, path, data["good"], str(tmp_path))
    message = REACHING[case].format(path=path, folder=os.path.dirname(path))
    check_refused(capsys, argv, str(tmp_path), _root(corpus), message=message)


@pytest.mark.parametrize("command", ["analyze", "report"])
@pytest.mark.parametrize("case", list(MISMATCHED))
def test_weights_that_do_not_fit_the_configuration_are_refused(capsys, corpus, tmp_path, case, command):
    models, data = corpus
    path = models[case]
    argv = _command_argv(command, path, data["good"], str(tmp_path))
    check_refused(capsys, argv, str(tmp_path), _root(corpus), message=MISMATCHED[case].format(path=path))


def test_resume_refuses_a_backup_that_reaches_outside_it(corpus, tmp_path):
    """A backup replaced by one whose kernel is stored in /etc/passwd: --resume refuses it before Keras reads it."""
    import h5py
    from bad_inputs_corpus import _datasets

    from weightkit.analysis.errors import WeightkitError
    from weightkit.compress.decorrelate.training import retrain

    models, data = corpus
    work = tmp_path / "work"
    retrain(models["good"], data["good"], epochs=1, work_dir=str(work))
    backup = work / "latest.weights.h5"
    with h5py.File(backup, "r+") as handle:
        kernel = next(name for name in _datasets(handle) if handle[name].shape == (8, 6))
        del handle[kernel]
        handle.create_dataset(kernel, shape=(8, 6), dtype="float32", external=[("/etc/passwd", 0, 192)])
    with pytest.raises(WeightkitError) as info:
        retrain(models["good"], data["good"], epochs=2, work_dir=str(work), resume=True)
    assert str(info.value) == (
        f"{backup}: {kernel} keeps its values in other files ('/etc/passwd': HDF5 external storage); refusing to "
        f"read them (a forged file?): remove {work} (or rerun with --force) and start over.")


def test_a_weights_file_beside_its_config_is_checked_too(keras, tmp_path, capsys):
    """``model.weights.h5`` + ``config.json`` (the TF-free reader's third format): external storage refused."""
    import h5py

    from bad_inputs_corpus import _datasets
    from refusal_checks import run

    inputs = keras.Input((6,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(5, name="wide")(inputs))
    path = tmp_path / "model.weights.h5"
    model.save_weights(path)
    (tmp_path / "config.json").write_text(model.to_json())
    with h5py.File(path, "r+") as handle:
        kernel = next(name for name in _datasets(handle) if handle[name].ndim == 2)
        del handle[kernel]
        handle.create_dataset(kernel, shape=(6, 5), dtype="float32", external=[("/etc/passwd", 0, 120)])
    status, out, err = run(capsys, ["analyze", path])
    assert (status, out) == (2, "")
    assert err == (f"weightkit analyze: error: {path}: {kernel} keeps its values in other files ('/etc/passwd': HDF5 "
                   "external storage); refusing to read them (a forged file?): " + _RESAVE + "\n")


def _h5(path, build):
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("layers/dense/vars/0", data=np.zeros((2, 3), np.float32))
        build(handle)
    return str(path)


def test_a_second_link_to_a_group_and_deep_nesting_are_refused(tmp_path):
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.files.hdf5 import MAX_H5_DEPTH, open_h5

    def alias(handle):
        handle["copy"] = handle["layers/dense"]

    def deep(handle):
        group = handle
        for _ in range(MAX_H5_DEPTH + 2):
            group = group.create_group("g")

    path = _h5(tmp_path / "alias.h5", alias)
    with pytest.raises(WeightkitError) as info, open_h5(path, path):
        pass
    assert str(info.value) == (f"{path}: layers/dense is a second link to group 'copy' (one group under two names, "
                               "which Keras never writes); refusing to walk it (a forged file?): " + _RESAVE)
    path = _h5(tmp_path / "deep.h5", deep)
    with pytest.raises(WeightkitError) as info, open_h5(path, path):
        pass
    assert str(info.value).startswith(f"{path}: g/g/g/") and str(info.value).endswith(
        f" nests groups more than {MAX_H5_DEPTH} deep (Keras' own files nest a few levels); refusing to walk it "
        "(a forged file?): " + _RESAVE)


def test_what_keras_writes_passes_the_check(keras, tmp_path):
    """A .keras's weights, a legacy .h5 and a save_weights file of a nested recurrent model hold only themselves."""
    import zipfile

    from weightkit.analysis.files.hdf5 import open_h5

    inner = keras.Sequential([keras.Input((4, 3)), keras.layers.Bidirectional(keras.layers.LSTM(2))], name="inner")
    inputs = keras.Input((4, 3))
    model = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    model.compile("adam", "mse")
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    model.save_weights(tmp_path / "m.weights.h5")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        (tmp_path / "inner.h5").write_bytes(archive.read("model.weights.h5"))
    for name in ("inner.h5", "m.h5", "m.weights.h5"):
        with open_h5(str(tmp_path / name), name) as handle:
            assert len(handle.keys()) > 0
