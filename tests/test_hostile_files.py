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

import pytest

#: Peak resident memory of one command, bytes; wall time, seconds.
MEMORY_LIMIT = 1.5e9
TIME_LIMIT = 30.0

MODEL_CASES = ["config.json bomb", "weights bomb", "deeply nested config", "weights declare more than stored",
               ".h5 dataset declares more than stored"]
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
    from weightkit.analysis.loading import read_model_config

    with pytest.raises(WeightkitError) as info:
        read_model_config(str(path))
    assert str(info.value) == (
        f"{path}: layer 'wide' (Dense) declares 3,600,060,000 parameters, and the model 3,600,060,000 in all, but the "
        "file stores 140 bytes of weights; refusing to build it (Keras would allocate 13.4 GiB first): the file is "
        "truncated or forged, save the model again with model.save('model.keras').")
