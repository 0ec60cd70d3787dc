"""Outputs that cannot or must not be written, and unreadable inputs: exit 2, one line, nothing lost.

The checks are those of ``test_bad_inputs.py`` (``bad_inputs_corpus.check_refused``): exit status 2, one
stderr line, no traceback, nothing written, every input byte for byte unchanged.
"""

import json
import os
import shutil

import pytest
from bad_inputs_corpus import DATA_COMMANDS, MODEL_COMMANDS, _command_argv, _root, _write, check_refused, tree_digest

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


# --------------------------------------------------------------------------------------------------
# retrain's hidden work folder (issue 17 item 8): refused before any model is loaded


def _work(path):
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.retrain")


@pytest.mark.parametrize("case", ["a file", "a link", "foreign files", "input inside"])
def test_retrain_work_folder_that_is_not_its_own_is_refused(capsys, corpus, tmp_path, case):
    models, data = corpus
    output = str(tmp_path / "r.keras")
    work = _work(output)
    model = models["good"]
    if case == "a file":
        _write(work, b"a file of the user's")
    elif case == "a link":
        os.symlink(str(tmp_path), work)
    else:
        os.makedirs(work)
        if case == "foreign files":
            _write(os.path.join(work, "thesis.tex"), b"mine")
        else:
            model = shutil.copy(models["good"], os.path.join(work, "model.keras"))
    argv = ["retrain", model, "--data", data["good"], "-o", output, "--epochs", "1", "--force"]
    message = {
        "a file": f"{output}: retrain keeps its backup in {work}, which exists and is a file, not retrain's folder; "
                  "move or remove it, or choose another output.",
        "a link": f"{output}: retrain keeps its backup in {work}, which exists and is a link, not retrain's folder; "
                  "move or remove it, or choose another output.",
        "foreign files": f"{output}: {work} holds files retrain did not write (no .weightkit-output in it), so it is "
                         "never deleted, not even with --force; move them or choose another output.",
        "input inside": f"{model}: is inside {work}, the work folder retrain deletes when it starts over or finishes "
                        f"{output}; move the input out of that folder first.",
    }[case]
    check_refused(capsys, argv, str(tmp_path), _root(corpus), message=message)


def test_a_second_retrain_to_the_same_output_is_one_line(capsys, corpus, tmp_path):
    """The first run holds the output's lock (flock: released by the kernel even on SIGKILL)."""
    from weightkit.analysis.output_sets import output_lock

    models, data = corpus
    output = str(tmp_path / "r.keras")
    with output_lock(output, what="retrain") as lock:
        before = sorted(os.listdir(tmp_path))
        line = check_refused(capsys, ["retrain", models["good"], "--data", data["good"], "-o", output],
                             str(tmp_path), _root(corpus),
                             message=f"{output}: another retrain to this output is running (process {os.getpid()}, "
                                     f"lock {lock}); wait for it to finish or choose another output.")
        assert sorted(os.listdir(tmp_path)) == before and line
    assert os.listdir(tmp_path) == []  # the lock file goes with the run that held it
