"""Every bad input × every command that takes it: exit status 2, one line, nothing written, input unchanged.

The corpus is generated here from code (tiny models, a few bytes of data): no binary blobs in the
repository. Each case runs the real command in process through ``run_cli`` and checks:

- exit status 2 and exactly one line on stderr, ``weightkit CMD: error: ...``, naming the file or
  option (the message's whole text is compared where it is the point of the case);
- no traceback;
- nothing left in the output folder (no temporary file, no half folder) and nothing new beside the
  inputs;
- every input file byte for byte unchanged (sha256 of the whole corpus before and after).
"""

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from weightkit._common import run_cli
from weightkit.cli import cli

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
    return paths


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
    return paths


@pytest.fixture(scope="session")
def corpus(keras, tmp_path_factory):
    """``(models, data)``: {case: path} of the bad-input corpus. Read-only: tests check its checksums."""
    root = tmp_path_factory.mktemp("corpus")
    os.makedirs(root / "models")
    os.makedirs(root / "data")
    return build_models(keras, root / "models"), build_data(root / "data")


def tree_digest(folder):
    """{relative path: sha256 (or 'dir')} of everything under ``folder``, hidden files included."""
    digest = {}
    for directory, folders, files in os.walk(folder):
        for name in folders:
            digest[os.path.relpath(os.path.join(directory, name), folder)] = "dir"
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path) or not os.path.isfile(path):
                digest[os.path.relpath(path, folder)] = "special"
                continue
            with open(path, "rb") as handle:
                digest[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return digest


def run(capsys, argv):
    capsys.readouterr()
    status = run_cli(cli, [str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _command_argv(command, model, data, out):
    """The argv of ``command`` on ``model`` (and ``data``), writing under the folder ``out``."""
    return {
        "analyze": ["analyze", model, "--json", os.path.join(out, "a.json")],
        "report": ["report", model, "-o", os.path.join(out, "report")],
        "retrain": ["retrain", model, "--data", data, "-o", os.path.join(out, "r.keras"), "--epochs", "1"],
        "merge": ["merge", model, "-o", os.path.join(out, "m.keras")],
        "merge --data": ["merge", model, "-o", os.path.join(out, "m.keras"), "--data", data],
        "analyze --data": ["analyze", model, "--data", data, "--json", os.path.join(out, "a.json")],
        "quantize": ["quantize", model, "-o", os.path.join(out, "q")],
        "quantize --data": ["quantize", model, "-o", os.path.join(out, "q"), "--data", data,
                            "--modes", "float32,dynamic"],
    }[command]


def check_refused(capsys, argv, out, corpus_root, *, names=(), message=None):
    """Run argv; assert exit 2, one error line naming one of ``names``, no output, corpus unchanged."""
    before_inputs = tree_digest(corpus_root)
    before_out = tree_digest(out)
    status, stdout, err = run(capsys, argv)
    command = f"weightkit {argv[0]}"
    lines = err.splitlines()
    assert status == 2, (status, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{command}: error: "), err
    assert "Traceback" not in err + stdout
    if names:
        assert any(str(name) in lines[0] for name in names), (names, lines[0])
    if message is not None:
        assert lines[0] == f"{command}: error: {message}"
    assert tree_digest(out) == before_out
    assert tree_digest(corpus_root) == before_inputs
    MESSAGES_SEEN[os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]] = lines[0]
    return lines[0]


#: {test id: the error line}: what users see, collected for the README table.
MESSAGES_SEEN = {}


def _root(corpus):
    return os.path.dirname(os.path.dirname(corpus[0]["good"]))


# --------------------------------------------------------------------------------------------------
# Bad model files × every command that loads a model

MODEL_COMMANDS = ["analyze", "report", "retrain", "merge", "quantize"]

MODEL_MESSAGES = {
    "empty file": "{path}: is an empty file, not a model; save the model again.",
    "empty file .h5": "{path}: is an empty file, not a model; save the model again.",
    "random bytes .keras": "{path}: is not a .keras zip archive (unrecognized content); check that the file is a "
                           "saved Keras model and was copied completely.",
    "random bytes .h5": "{path}: is not an HDF5 file (unrecognized content); check that the file is a saved Keras "
                        "model and was copied completely.",
    "truncated .keras": "{path}: corrupt or truncated .keras archive (File is not a zip file); copy or save the "
                        "model again.",
    "zip without config.json": "{path}: zip archive without config.json, so not a Keras model file; save the model "
                               "with model.save('model.keras').",
    "unknown layer class": "{path}: layer 'hidden' is an unknown custom object (WeirdDense), whose code would run "
                           "while loading; refused in safe mode: pass --unsafe (unsafe=True) only if you trust "
                           "the file.",
    "Lambda layer": "{path}: layer 'double' is a Lambda layer, whose code would run while loading; refused in safe "
                    "mode: pass --unsafe (unsafe=True) only if you trust the file.",
    ".h5 weights, no config": "{path}: HDF5 file with weights but no model configuration (written by "
                              "save_weights?); build the model in code, call load_weights, then "
                              "model.save('model.keras').",
    "directory, not a file": "{path}: is a directory, not a model file; give the path of a .keras or .h5 file.",
    "missing path": "{path}: no such file; check the path to the model (.keras or .h5).",
    "path through a file": "{path}: no such file; check the path to the model (.keras or .h5).",
}

#: Models that load but are broken or empty: refused by every command that writes a model from them.
MODEL_CONTENT = {
    "NaN weights": "{path}: layer 'hidden': 1 of its 48 kernel values is NaN or Inf, so the model is broken (did "
                   "training diverge?); restore a good copy or retrain it. `weightkit analyze` lists such layers.",
    "Inf weights": "{path}: layer 'hidden': 1 of its 48 kernel values is NaN or Inf, so the model is broken (did "
                   "training diverge?); restore a good copy or retrain it. `weightkit analyze` lists such layers.",
    "no layer with weights": "{path}: model 'no_weights' has no layer with weights (only Dropout, Softmax), so "
                             "there is nothing to analyze or change; check that this is the trained model you meant.",
}


@pytest.mark.parametrize("command", MODEL_COMMANDS)
@pytest.mark.parametrize("case", list(MODEL_MESSAGES))
def test_bad_model_file(capsys, corpus, tmp_path, case, command):
    models, data = corpus
    path = models[case]
    argv = _command_argv(command, path, data["good"], str(tmp_path))
    check_refused(capsys, argv, str(tmp_path), _root(corpus), message=MODEL_MESSAGES[case].format(path=path))


@pytest.mark.parametrize("command", MODEL_COMMANDS)
@pytest.mark.parametrize("case", list(MODEL_CONTENT))
def test_broken_model_is_refused_by_commands_that_write_a_model(capsys, corpus, tmp_path, case, command):
    models, data = corpus
    path = models[case]
    argv = _command_argv(command, path, data["good"], str(tmp_path))
    if command in ("analyze", "report") and case != "no layer with weights":
        # A diagnosis, not a refusal: the broken layer is listed as skipped with the reason.
        status, out, err = run(capsys, argv)
        assert (status, err) == (0, "")
        if command == "analyze":
            assert "skipped hidden (Dense, 54 params, 48 MACs): weights contain NaN or Inf" in out
            assert json.loads((tmp_path / "a.json").read_text())["skipped"][0]["reason"] == "weights contain NaN or Inf"
        else:
            assert "weights contain NaN or Inf" in (tmp_path / "report" / "index.html").read_text()
        return
    check_refused(capsys, argv, str(tmp_path), _root(corpus), message=MODEL_CONTENT[case].format(path=path))


def test_one_neuron_layers_are_explained_not_crashed(capsys, corpus, tmp_path):
    """One-neuron layers are a valid model with nothing to compare: each command says so."""
    models, data = corpus
    path = models["one-neuron layers"]
    status, out, err = run(capsys, _command_argv("analyze", path, None, str(tmp_path)))
    assert (status, err) == (0, "")
    assert "skipped hidden (Dense, 9 params, 8 MACs): only one neuron: nothing to compare it with" in out
    status, out, err = run(capsys, _command_argv("merge", path, None, str(tmp_path)))
    assert status == 0 and "left alone: hidden (Dense): only one neuron: nothing to merge" in out
    assert json.loads((tmp_path / "m.json").read_text())["totals"]["neurons_removed"] == 0
    argv = _command_argv("retrain", path, data["good binary"], str(tmp_path / "sub"))
    os.makedirs(tmp_path / "sub")
    check_refused(capsys, argv, str(tmp_path / "sub"), _root(corpus),
                  message="model 'one_neuron': no hidden layer with a Dense, Conv or RNN kernel of two or more "
                          "neurons to regularize; name layers with --layers.")


# --------------------------------------------------------------------------------------------------
# Bad data × every command that takes --data

DATA_COMMANDS = ["retrain", "merge --data", "quantize --data", "analyze --data"]

DATA_CASES = ["empty file", "random bytes .npz", "wrong dimensions", "x and y lengths differ",
              "labels outside the outputs", "empty dataset", "text in a numeric CSV column",
              "image folder without images", "corrupt image", "missing path", "path through a file",
              "pickled arrays"]


@pytest.mark.parametrize("command", DATA_COMMANDS)
@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data(capsys, corpus, tmp_path, case, command):
    models, data = corpus
    model = models["recurrent" if case == "wrong dimensions" else "good"]
    argv = _command_argv(command, model, data[case], str(tmp_path))
    check_refused(capsys, argv, str(tmp_path), _root(corpus), names=[data[case]],
                  message=DATA_MESSAGES[case].format(path=data[case]) if case in DATA_MESSAGES else None)


#: Whole messages where the wording is the point (the rest are checked to name the --data path).
DATA_MESSAGES = {
    "empty file": "--data {path}: is an empty file; save the arrays with np.savez(path, x=..., y=...).",
    "random bytes .npz": "--data {path}: is not an .npz archive (unrecognized content); save the arrays with "
                         "np.savez(path, x=..., y=...).",
    "corrupt image": "{path}: image {path}/dogs/broken.png could not be decoded; remove or replace corrupt images.",
    "pickled arrays": "{path}: holds Python objects (pickled arrays), which are not loaded for safety; save plain "
                      "numeric arrays with np.savez.",
}


# --------------------------------------------------------------------------------------------------
# Outputs that cannot or must not be written

OUTPUT_OPTION = {"analyze": ["--json"], "report": ["-o"], "retrain": ["-o"], "merge": ["-o"], "quantize": ["-o"],
                 "demo": ["-o"]}


def _output_argv(command, models, data, target):
    """``command`` with its output (``--json`` for analyze) at ``target``."""
    good = models["good"]
    return {
        "analyze": ["analyze", good, "--json", target],
        "report": ["report", good, "-o", target],
        "retrain": ["retrain", good, "--data", data["good"], "-o", target, "--epochs", "1"],
        "merge": ["merge", good, "-o", target],
        "quantize": ["quantize", good, "-o", target, "--modes", "float32,dynamic"],
        "demo": ["demo", "-o", target, "--epochs", "1"],
    }[command]


_FILE_OUTPUT = {"analyze": "a.json", "retrain": "r.keras", "merge": "m.keras"}
_FOLDER_OUTPUT = {"report": "report", "quantize": "q", "demo": "demo"}


def _existing_output(tmp_path, command):
    """An output of ``command`` that already exists (a non-empty folder for folder outputs)."""
    name = {**_FILE_OUTPUT, **_FOLDER_OUTPUT}[command]
    target = tmp_path / name
    if command in _FOLDER_OUTPUT:
        os.makedirs(target)
        _write(target / "index.html", b"earlier work")
    else:
        _write(target, b"earlier work")
    return str(target)


OUTPUT_CASES = {
    "parent is a file": lambda tmp_path, command: os.path.join(
        _write(tmp_path / "blocker", b"a file"), {**_FILE_OUTPUT, **_FOLDER_OUTPUT}[command]),
    "output exists": _existing_output,
}


@pytest.mark.parametrize("command", list(OUTPUT_OPTION))
@pytest.mark.parametrize("case", list(OUTPUT_CASES))
def test_output_refused(capsys, corpus, tmp_path, case, command):
    models, data = corpus
    target = OUTPUT_CASES[case](tmp_path, command)
    message = None
    if case == "parent is a file":
        message = f"{target}: {tmp_path / 'blocker'} is a file, not a folder; choose an output path in a folder."
    check_refused(capsys, _output_argv(command, models, data, target), str(tmp_path), _root(corpus),
                  names=[target], message=message)


@pytest.mark.parametrize("command", list(_FOLDER_OUTPUT))
def test_a_file_where_a_folder_is_expected(capsys, corpus, tmp_path, command):
    models, data = corpus
    target = _write(tmp_path / "afile", b"a file")
    check_refused(capsys, _output_argv(command, models, data, target), str(tmp_path), _root(corpus),
                         names=[target])


@pytest.mark.parametrize("command", list(_FILE_OUTPUT))
def test_a_folder_where_a_file_is_expected(capsys, corpus, tmp_path, command):
    models, data = corpus
    target = str(tmp_path / _FILE_OUTPUT[command])
    os.makedirs(target)
    check_refused(capsys, _output_argv(command, models, data, target), str(tmp_path), _root(corpus),
                         names=[target])


# --------------------------------------------------------------------------------------------------
# Permissions. Root reads and writes anything, whatever the mode bits, so as root these cases run in a
# child process without the capabilities that let root ignore them (CAP_DAC_OVERRIDE and
# CAP_DAC_READ_SEARCH, dropped by util-linux's setpriv): the real kernel check, not a mock.

# stderr is captured at the descriptor, as a terminal would show it (Keras' own warnings included).
_PERMISSION_SCRIPT = r"""
import contextlib, io, json, os, sys, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from weightkit._common import run_cli
from weightkit.cli import cli
results = []
saved = os.dup(2)
for argv in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile() as err, contextlib.redirect_stdout(io.StringIO()):
        sys.stderr.flush()
        os.dup2(err.fileno(), 2)
        status = run_cli(cli, argv)
        sys.stderr.flush()
        os.dup2(saved, 2)
        err.seek(0)
        results.append([status, err.read().decode()])
print(json.dumps(results))
"""


def _without_root_powers():
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux's setpriv: mode bits cannot be tested")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}"]


def test_unreadable_inputs_and_unwritable_outputs(corpus, tmp_path):
    import subprocess
    import sys

    models, data = corpus
    model = shutil.copy(models["good"], tmp_path / "locked.keras")
    npz = shutil.copy(data["good"], tmp_path / "locked.npz")
    readonly = tmp_path / "readonly"
    os.makedirs(readonly)
    for path in (model, npz):
        os.chmod(path, 0)
    os.chmod(readonly, 0o555)
    cases = []  # (argv, expected message, folder that must stay as it is)
    out = tmp_path / "out"
    os.makedirs(out)
    for command in MODEL_COMMANDS:
        cases.append((_command_argv(command, str(model), data["good"], str(out)),
                      f"{model}: cannot be read (permission denied); fix its permissions."))
    for command in DATA_COMMANDS:
        cases.append((_command_argv(command, models["good"], str(npz), str(out)),
                      f"--data {npz}: cannot be read (permission denied); fix its permissions."))
    for command in OUTPUT_OPTION:
        target = str(readonly / {**_FILE_OUTPUT, **_FOLDER_OUTPUT}[command])
        cases.append((_output_argv(command, models, data, target),
                      f"{target}: cannot write in {readonly} (permission denied); choose another output path."))
    before = tree_digest(_root(corpus))
    try:
        completed = subprocess.run(
            [*_without_root_powers(), sys.executable, "-c", _PERMISSION_SCRIPT,
             json.dumps([[str(a) for a in argv] for argv, _ in cases])],
            capture_output=True, text=True, timeout=120, check=True)
    finally:
        for path in (model, npz):
            os.chmod(path, 0o600)
        os.chmod(readonly, 0o755)
    results = json.loads(completed.stdout.splitlines()[-1])
    for (argv, message), (status, err) in zip(cases, results):
        assert (status, err) == (2, f"weightkit {argv[0]}: error: {message}\n"), argv
    assert os.listdir(out) == [] and os.listdir(readonly) == []
    assert tree_digest(_root(corpus)) == before


# --------------------------------------------------------------------------------------------------
# An output that is, or is a folder holding, an input: refused even with --force


@pytest.mark.parametrize("command", ["analyze", "report", "retrain", "merge", "quantize"])
def test_output_that_would_destroy_an_input_is_refused_even_with_force(capsys, corpus, tmp_path, command):
    models, data = corpus
    model = shutil.copy(models["good"], tmp_path / "model.keras")
    npz = shutil.copy(data["good"], tmp_path / "data.npz")
    argv, target, victim = {
        "analyze": (["analyze", model, "--data", npz, "--json", npz], npz, npz),
        "report": (["report", model, "-o", tmp_path], tmp_path, model),
        "retrain": (["retrain", model, "--data", npz, "-o", model, "--epochs", "1"], model, model),
        "merge": (["merge", model, "--data", npz, "-o", model], model, model),
        "quantize": (["quantize", model, "--data", npz, "-o", tmp_path], tmp_path, model),
    }[command]
    message = (f"{target}: {'is' if str(target) == str(victim) else 'holds'} the input {victim}, which is never "
               "modified or deleted (not even with --force); choose another output path.")
    if command == "merge":  # its own check, first, names the option
        message = f"-o {model}: is the input model, which is never modified; choose another path."
    check_refused(capsys, argv + ["--force"], str(tmp_path), _root(corpus), message=message)


def test_retrain_that_diverges_writes_nothing(capsys, corpus, tmp_path):
    models, data = corpus
    output = tmp_path / "r.keras"
    argv = ["retrain", models["good"], "--data", data["good"], "-o", output, "--epochs", "2", "--learning-rate",
            "1e30", "--strength", "1e30", "--quiet"]
    check_refused(capsys, argv, str(tmp_path), _root(corpus),
                  message=f"{output}: training diverged (the weights became NaN or Inf), so nothing was written; "
                          "lower --learning-rate (now 1e+30) or --strength (now 1e+30).")


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_debug_shows_the_traceback_and_still_the_line(capsys, corpus, tmp_path, command):
    models, data = corpus
    path = models["truncated .keras"]
    status, _, err = run(capsys, _command_argv(command, path, data["good"], str(tmp_path)) + ["--debug"])
    assert status == 2
    assert err.startswith("Traceback (most recent call last):")
    assert "zipfile.BadZipFile" in err  # the cause, chained
    assert err.splitlines()[-1] == f"weightkit {command}: error: " + MODEL_MESSAGES["truncated .keras"].format(path=path)
    assert os.listdir(tmp_path) == []
