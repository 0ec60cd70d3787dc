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

import json
import os

import pytest
from refusal_checks import (
    DATA_COMMANDS,
    MODEL_COMMANDS,
    _command_argv,
    _root,
    careless_values,
    check_refused,
    numeric_option_argv,
    numeric_options,
    run,
)

# --------------------------------------------------------------------------------------------------
# Bad model files × every command that loads a model


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
    # Hostile files (tests/bad_inputs_corpus.py: build_hostile_models): refused from what the file declares.
    "config.json bomb": "{path}: archive member config.json declares 80.0 MiB, over the limit of 64.0 MiB for a "
                        "model configuration; refusing to inflate it. Re-save the model with model.save('model.keras').",
    "weights bomb": "{path}: archive member model.weights.h5 would inflate 183029 bytes to 40.0 MiB (ratio 229, over "
                    "the limit of 100); refusing a possible decompression bomb. Re-save the model with "
                    "model.save('model.keras').",
    "deeply nested config": "{path}: config.json nests objects more than 200 deep (a forged file?); refusing it. "
                            "Re-save the model with model.save('model.keras').",
    "forged weightkit class": "{path}: layer 'hidden' uses an unknown custom object (os.system registered as "
                              "weightkit>DecorrelationRegularizer), whose code would run while loading; refused in "
                              "safe mode: pass --unsafe (unsafe=True) only if you trust the file.",
    "weights declare more than stored": "{path}: weight dataset model.weights.h5:layers/dense/vars/0 declares shape "
                                        "(8, 250000) (7.6 MiB) but the file stores 0 bytes of it; refusing to allocate "
                                        "it (the file is truncated or forged): save the model again with "
                                        "model.save('model.keras').",
    ".h5 dataset declares more than stored": "{path}: weight dataset model_weights/hidden/hidden/kernel declares shape "
                                             "(975000000,) (3.6 GiB) but the file stores 0 bytes of it; refusing to "
                                             "allocate it (the file is truncated or forged): save the model again with "
                                             "model.save('model.keras').",
    ".keras linked to /dev/zero": "{path}: is a character device, not a regular file; give the path of a saved file.",
    ".h5 model_config is an int array": "{path}: its model_config attribute is ndarray data, not JSON text, so this is "
                                        "not a Keras model file; save the model again with model.save('model.keras').",
}

#: Files with code in them: analyze and report (weights only) list the layer as skipped with this reason.
#: (A forged regularizer is never deserialized there: its layer is analyzed like any Dense.)
CODE_IN_FILE = {
    "unknown layer class": "custom class WeirdDense: its code is not run (weight analysis reads only data)",
    "Lambda layer": "Lambda layer: its code is stored in the file and is not run (weight analysis reads only data)",
    "forged weightkit class": "hidden",
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
    if command in ("analyze", "report") and case in CODE_IN_FILE:
        # Weight analysis reads only the file's data (weightkit.analysis.files.stored): the layer is listed, its code never runs.
        status, out, err = run(capsys, argv)
        assert (status, err) == (0, ""), err
        listed = out if command == "analyze" else (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
        assert CODE_IN_FILE[case] in listed
        return
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
        assert (status, err) == (0, ""), err
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
    assert (status, err) == (0, ""), err
    assert "skipped hidden (Dense, 9 params, 8 MACs): only one neuron: nothing to compare it with" in out
    check_refused(capsys, _command_argv("merge", path, None, str(tmp_path)), str(tmp_path), _root(corpus),
                  message=f"{path}: nothing can be merged, so no copy was written: every layer is left alone "
                          "(hidden (only one neuron: nothing to merge); out (its output is (on the way to) a model "
                          "output)). Run weightkit analyze to see each layer.")
    argv = _command_argv("retrain", path, data["good binary"], str(tmp_path / "sub"))
    os.makedirs(tmp_path / "sub")
    check_refused(capsys, argv, str(tmp_path / "sub"), _root(corpus),
                  message="model 'one_neuron': no hidden layer with a Dense, Conv or RNN kernel of two or more "
                          "neurons to regularize; name layers with --layers.")


# --------------------------------------------------------------------------------------------------
# Bad data × every command that takes --data


DATA_CASES = ["empty file", "random bytes .npz", "wrong dimensions", "x and y lengths differ",
              "labels outside the outputs", "empty dataset", "text in a numeric CSV column",
              "image folder without images", "corrupt image", "missing path", "path through a file",
              "pickled arrays", "npz bomb", "npz header declares more than stored", "npz header declares 1e12 elements",
              "truncated .npy member", "CSV field over 131072 characters",
              ".csv linked to /dev/zero", ".npz linked to /dev/zero", ".npz that is a FIFO",
              "CSV a million columns wide"]


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
    "npz bomb": "{path}: archive member x.npy would inflate 40858 bytes to 40.0 MiB (ratio 1027, over the limit of "
                "100); refusing a possible decompression bomb. Save the arrays uncompressed with np.savez(path, x=..., "
                "y=...).",
    "npz header declares more than stored": "{path}: array x.npy declares shape (1000000, 8) (30.5 MiB) but the "
                                            "archive stores 1280 bytes of it; the file is truncated or forged: save "
                                            "plain arrays with np.savez.",
    "npz header declares 1e12 elements": "{path}: array x.npy declares shape (125000000000, 8) (3725.3 GiB), over the "
                                         "limit of 8.0 GiB for --data (the archive stores 1280 bytes of it); refusing "
                                         "to allocate it: give a smaller sample of the data.",
    "truncated .npy member": "{path}: array x.npy is truncated or corrupt (EOF: reading array data, expected 1280 "
                             "bytes got 576); save the arrays again with np.savez(path, x=..., y=...).",
    "CSV field over 131072 characters": "{path}: line 3 has a field over 131072 characters, which is no number; check "
                                        "the file (an unclosed quote?).",
    ".csv linked to /dev/zero": "--data {path}: is a character device, not a regular file; give the path of a saved "
                                "file.",
    ".npz linked to /dev/zero": "--data {path}: is a character device, not a regular file; give the path of a saved "
                                "file.",
    ".npz that is a FIFO": "--data {path}: is a FIFO, not a regular file; give the path of a saved file.",
    # Checked from the header before a row is read (it used to allocate 4,096 x 1,000,000 floats: out of memory).
    "CSV a million columns wide": "--data {path}: the model expects input of shape (batch, 8), the data has (batch, "
                                  "999999) (axis 1 is 999999, expected 8); give data of the model's input shape.",
}


# --------------------------------------------------------------------------------------------------
# Token ids outside an Embedding's vocabulary × every command that runs the model on --data


@pytest.fixture(scope="module")
def token_model(keras, tmp_path_factory):
    """ids (5 steps) -> Flatten (passes ids on) -> Embedding(20, 4) -> pooling -> Dense, saved and reloaded."""
    from bad_inputs_corpus import N_CLASSES, N_STEPS, N_TOKENS

    keras.utils.set_random_seed(0)
    ids = keras.Input((N_STEPS,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(N_TOKENS, 4, name="words")(keras.layers.Dropout(0.1, name="drop")(ids))
    x = keras.layers.Dense(6, activation="relu", name="hidden")(keras.layers.GlobalAveragePooling1D()(x))
    model = keras.Model(ids, keras.layers.Dense(N_CLASSES, activation="softmax", name="out")(x), name="tokens")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = tmp_path_factory.mktemp("token_model") / "tokens.keras"
    model.save(path)
    return str(path)


TOKEN_COMMANDS = DATA_COMMANDS + ["report --data", "merge --mode data"]
TOKEN_MESSAGES = {
    "token ids beyond the vocabulary": "--data {path}: input 'tokens' holds token id 49, but Embedding 'words' has a "
                                       "vocabulary of 20 (ids 0 to 19); give ids below 20 (map unknown tokens to a "
                                       "reserved id) or the model the data was made for.",
    "negative token ids": "--data {path}: input 'tokens' holds token id -3, but Embedding 'words' takes ids 0 to 19 (a "
                          "vocabulary of 20); give non-negative ids.",
}


def _token_argv(command, model, data, out):
    extra = {"report --data": ["report", model, "-o", os.path.join(out, "report"), "--data", data],
             "merge --mode data": ["merge", model, "-o", os.path.join(out, "m.keras"), "--mode", "data", "--data",
                                   data]}
    return extra[command] if command in extra else _command_argv(command, model, data, out)


@pytest.mark.parametrize("command", TOKEN_COMMANDS)
@pytest.mark.parametrize("case", list(TOKEN_MESSAGES))
def test_token_ids_outside_the_vocabulary(capsys, corpus, token_model, tmp_path, case, command):
    """Used to crash inside the model: 'internal error: InvalidArgumentError ... GatherV2' (exit 1)."""
    _, data = corpus
    check_refused(capsys, _token_argv(command, token_model, data[case], str(tmp_path)), str(tmp_path), _root(corpus),
                  message=TOKEN_MESSAGES[case].format(path=data[case]))


def test_token_ids_in_range_pass_the_check(corpus, token_model, keras):
    from weightkit.analysis.data.checks import load_data_for_model
    from weightkit.analysis.data.token_ids import embedding_vocabularies

    model = keras.models.load_model(token_model)
    assert embedding_vocabularies(model) == [[("words", 20)]]  # through the Dropout
    dataset = load_data_for_model(corpus[1]["good token ids"], model)
    assert dataset.x_train.max() == 19


# --------------------------------------------------------------------------------------------------
# Careless numbers × every numeric option of every command (weightkit/_options.py)

NUMERIC_OPTIONS = numeric_options()


def test_every_numeric_option_is_declared_with_weightkit_types():
    """A bare float/int/FloatRange lets NaN, infinities or 2**70 through; weightkit._options' types do not."""
    from weightkit._options import Real, Whole

    bare = [f"{command} {param.opts[0]}" for command, params in NUMERIC_OPTIONS.items() for param in params
            if not isinstance(param.type, (Real, Whole))]
    assert bare == []
    assert {"analyze", "report", "retrain", "merge", "quantize", "demo"} <= set(NUMERIC_OPTIONS)


@pytest.mark.parametrize("command, option, value", [
    (command, param.opts[0], value) for command, params in NUMERIC_OPTIONS.items() for param in params
    for value in careless_values(param)])
def test_careless_number_is_refused_before_anything_runs(capsys, corpus, tmp_path, command, option, value):
    models, data = corpus
    argv = numeric_option_argv(command, option, value, models, data, str(tmp_path))
    line = check_refused(capsys, argv, str(tmp_path), _root(corpus), names=[option])
    assert line.startswith(f"weightkit {command}: error: Invalid value for '{option}': {value} is ")
    assert line.endswith(f"(see 'weightkit {command} --help')")


def test_careless_numbers_get_the_range_in_words(capsys, corpus, tmp_path):
    models, data = corpus
    cases = {("retrain", "--seed", "-1"): "-1 is not in the range 0<=x<=4294967295.",
             ("retrain", "--seed", str(2**70)): f"{2**70} is not in the range 0<=x<=4294967295.",
             ("retrain", "--strength", "nan"): "nan is not a finite number; give a number in the range x>=0.0.",
             ("retrain", "--validation-split", "nan"): "nan is not a finite number; give a number in the range "
                                                       "0.0<=x<1.0.",
             ("quantize", "--max-drop", "nan"): "nan is not a finite number; give a number in the range x>=0.0.",
             ("retrain", "--batch-size", str(2**70)): f"{2**70} is too large; give at most 2147483647.",
             ("merge", "--ratio", "inf"): "inf is not a finite number; give a finite number."}
    for (command, option, value), reason in cases.items():
        argv = numeric_option_argv(command, option, value, models, data, str(tmp_path))
        check_refused(capsys, argv, str(tmp_path), _root(corpus),
                      message=f"Invalid value for '{option}': {reason} (see 'weightkit {command} --help')")


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


# --------------------------------------------------------------------------------------------------
# Refusals come before TensorFlow: a bad option, a missing --data or an existing output in well under a second

_FAST_REFUSALS = """
import json, sys, time
from weightkit._common import run_cli
from weightkit.cli import cli
import weightkit.analysis.data.datasets, weightkit.analysis.files.io, weightkit.analysis.files.loading  # what every refusal needs
results = []
for argv in json.loads(sys.argv[1]):
    start = time.perf_counter()
    status = run_cli(cli, argv)
    results.append([argv, status, time.perf_counter() - start, "tensorflow" in sys.modules])
print(json.dumps(results))
"""


def test_refusals_of_every_command_come_before_tensorflow(corpus, tmp_path):
    """Each used to take 6-7 s (TensorFlow loaded first); now each takes well under a second, TensorFlow never
    imported. One subprocess runs them all, in process, so that the interpreter's start is not timed."""
    import subprocess
    import sys

    models, data = corpus
    good, npz, missing = models["good"], data["good"], str(tmp_path / "missing.npz")
    existing, full = tmp_path / "exists.keras", tmp_path / "full"
    existing.write_bytes(b"keep")
    (tmp_path / "exists.json").write_text("{}")
    full.mkdir()
    (full / "mine.txt").write_text("keep")
    out = str(tmp_path / "new")
    cases = [
        ["analyze", good, "--data", missing], ["analyze", good, "--json", str(tmp_path / "exists.json")],
        ["analyze", models["missing path"]],
        ["report", good, "-o", str(full)], ["report", good, "-o", out, "--data", missing],
        ["merge", good, "-o", out + ".keras", "--ratio", "2"], ["merge", good, "-o", str(existing)],
        ["merge", good, "-o", out + ".keras", "--data", missing],
        ["merge", good, "-o", out + ".keras", "--mode", "data", "--data", npz, "--max-error", "3"],
        ["fold", good, "-o", str(existing)], ["fold", good, "-o", out + ".keras", "--data", "sklearn:nope"],
        ["quantize", good, "-o", str(full)], ["quantize", good, "-o", out, "--data", missing],
        ["quantize", models["empty file"], "-o", out], ["quantize", good, "-o", out, "--mixed"],
        ["quantize", good, "-o", out, "--modes", "float32,int9"],
        ["shrink", good, "--data", npz, "-o", out, "--modes", "int9"], ["demo", "-o", out, "--modes", "int9"],
        ["retrain", good, "--data", missing, "-o", out + ".keras"],
        ["retrain", good, "--data", npz, "-o", str(existing)],
        ["shrink", good, "--data", missing, "-o", out], ["shrink", good, "--data", npz, "-o", str(full)],
        ["demo", "-o", str(full)],
    ]
    result = subprocess.run([sys.executable, "-c", _FAST_REFUSALS, json.dumps(cases)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = result.stderr.splitlines()
    assert result.returncode == 0, result.stderr
    assert len(lines) == len(cases) and all(": error: " in line for line in lines), result.stderr
    slow = [(argv, status, round(seconds, 2), tensorflow) for argv, status, seconds, tensorflow
            in json.loads(result.stdout) if status != 2 or seconds >= 1.5 or tensorflow]
    assert slow == []
    commands = {"analyze", "report", "merge", "fold", "quantize", "retrain", "shrink", "demo"}
    assert {argv[0] for argv in cases} == commands
    assert (existing.read_bytes(), os.listdir(full)) == (b"keep", ["mine.txt"])
    modes = ("--modes: unknown mode 'int9'; expected a comma-separated list of float32, dynamic, float16, int8, "
             "int8-io, int16x8, dynamic-int4, int4, keras-int8, keras-int4, keras-float8, mixed, onnx.")
    assert [line for line in lines if "--modes" in line] == [
        f"weightkit {command}: error: {modes}" for command in ("quantize", "shrink", "demo")]
