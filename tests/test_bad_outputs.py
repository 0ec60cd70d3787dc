"""Outputs that cannot or must not be written, and unreadable inputs: exit 2, one line, nothing lost.

The checks are those of ``test_bad_inputs.py`` (``refusal_checks.check_refused``): exit status 2, one
stderr line, no traceback, nothing written, every input byte for byte unchanged.
"""

import json
import os
import shutil

import pytest
from bad_inputs_corpus import _write
from refusal_checks import DATA_COMMANDS, MODEL_COMMANDS, _command_argv, _root, check_refused, run, tree_digest

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
    from weightkit.output_sets import output_lock

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


# --------------------------------------------------------------------------------------------------
# One work folder for every resumable command (issue 29 item 2): shrink's is guarded as retrain's is, --force never
# deletes a user's file there, and a file or a link in its place is one line, not an internal error.


def _shrink_work(path):
    return os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.shrink")


def _plant_work_folder(tmp_path, models, work, case):
    """Put ``case`` at the work path ``work``; the model to pass (a copy inside it for "input inside")."""
    model = models["good"]
    if case == "a file":
        _write(work, b"a file of the user's")
    elif case == "a link":
        os.symlink(str(tmp_path), work)
    else:
        os.makedirs(work)
        if case == "foreign files":
            _write(os.path.join(work, "thesis.tex"), b"mine")
        elif case == "user's files in its own folder":
            _write(os.path.join(work, ".weightkit-output"), b"")
            _write(os.path.join(work, "state.json"), b"{}")
            _write(os.path.join(work, "latest.weights.h5"), b"a backup")
            _write(os.path.join(work, "data.npz"), b"the user's data")
            _write(os.path.join(work, "model.keras"), b"the user's model")
        else:
            model = shutil.copy(models["good"], os.path.join(work, "model.keras"))
    return model


@pytest.mark.parametrize("case", ["a file", "a link", "foreign files", "user's files in its own folder",
                                  "input inside"])
def test_shrink_work_folder_that_is_not_its_own_is_refused(capsys, corpus, tmp_path, case):
    models, data = corpus
    output = str(tmp_path / "small")
    work = _shrink_work(output)
    model = _plant_work_folder(tmp_path, models, work, case)
    argv = ["shrink", model, "--data", data["good"], "-o", output, "--force"]
    message = {
        "a file": f"{output}: shrink keeps its checkpoints in {work}, which exists and is a file, not shrink's folder; "
                  "move or remove it, or choose another output.",
        "a link": f"{output}: shrink keeps its checkpoints in {work}, which exists and is a link, not shrink's folder; "
                  "move or remove it, or choose another output.",
        "foreign files": f"{output}: {work} holds files shrink did not write (no .weightkit-output in it), so it is "
                         "never deleted, not even with --force; move them or choose another output.",
        "user's files in its own folder": f"{output}: {work} holds files shrink did not write (data.npz, "
                                          "latest.weights.h5, model.keras), so they are never deleted, not even with "
                                          "--force; move them out or choose another output.",
        "input inside": f"{model}: is inside {work}, the work folder shrink deletes when it starts over or finishes "
                        f"{output}; move the input out of that folder first.",
    }[case]
    check_refused(capsys, argv, str(tmp_path), _root(corpus), message=message)


def test_retrain_keeps_a_users_files_in_its_own_work_folder(capsys, corpus, tmp_path):
    """A marked folder is retrain's, but --force removes only retrain's files: one of the user's there is refused."""
    models, data = corpus
    output = str(tmp_path / "r.keras")
    work = _work(output)
    _plant_work_folder(tmp_path, models, work, "user's files in its own folder")
    argv = ["retrain", models["good"], "--data", data["good"], "-o", output, "--epochs", "1", "--force"]
    check_refused(capsys, argv, str(tmp_path), _root(corpus),
                  message=f"{output}: {work} holds files retrain did not write (data.npz, model.keras, state.json), so "
                          "they are never deleted, not even with --force; move them out or choose another output.")


def test_work_folder_removes_only_its_own_files(tmp_path):
    from weightkit.analysis.files.work_folder import WorkFolder

    work = WorkFolder.beside(str(tmp_path / "small"), "shrink")
    work.start()
    for name in ("state.json", "merged.keras", ".merged.keras.abc123-99999999-abcdefgh.part.keras"):
        _write(os.path.join(work.path, name), b"shrink's")
    assert work.interrupted()
    _write(os.path.join(work.path, "notes.txt"), b"the user's")
    work.remove(strict=False)  # the clean-up after a failure: ours go, the user's file and its folder stay
    assert os.listdir(work.path) == ["notes.txt"]
    os.unlink(os.path.join(work.path, "notes.txt"))
    work.start()
    work.remove()
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------------------------------
# One lock for every resumable command (issue 29 item 3)


def test_a_second_shrink_to_the_same_output_is_one_line_and_leaves_the_live_runs_checkpoints(capsys, corpus,
                                                                                             tmp_path):
    """A live run (it holds the lock) is never called interrupted, and --force cannot take its checkpoints."""
    from weightkit.analysis.files.work_folder import output_lock

    models, data = corpus
    output = str(tmp_path / "small")
    work = _shrink_work(output)
    os.makedirs(work)
    _write(os.path.join(work, ".weightkit-output"), b"")
    _write(os.path.join(work, "state.json"), b'{"settings": {}, "stages": {"original": {}}}')
    with output_lock(output, what="shrink") as lock:
        for extra in ([], ["--force"]):
            check_refused(capsys, ["shrink", models["good"], "--data", data["good"], "-o", output, *extra],
                          str(tmp_path), _root(corpus),
                          message=f"{output}: another shrink to this output is running (process {os.getpid()}, "
                                  f"lock {lock}); wait for it to finish or choose another output.")


@pytest.mark.parametrize("command", ["retrain", "shrink"])
def test_a_lock_path_that_is_a_link_is_refused_and_never_followed(capsys, corpus, tmp_path, command):
    """A planted ``.OUT.lock`` link to a user's file: following it would truncate that file and write a pid in it."""
    models, data = corpus
    output = str(tmp_path / ("r.keras" if command == "retrain" else "small"))
    victim = _write(tmp_path / "thesis.tex", b"the user's thesis")
    lock = os.path.join(tmp_path, f".{os.path.basename(output)}.lock")
    os.symlink(victim, lock)
    argv = [command, models["good"], "--data", data["good"], "-o", output]
    check_refused(capsys, argv, str(tmp_path), _root(corpus),
                  message=f"{lock}: is not a plain file but weightkit keeps its lock there (one run per output); "
                          "move or remove it, or choose another output.")
    assert open(victim, "rb").read() == b"the user's thesis"


# --------------------------------------------------------------------------------------------------
# An output folder given as a link to a folder (issue 29 item 5): written into the link's target, the link kept.
# Refusing would also be safe; writing through is what every earlier link in an output path already gets, and what
# the user who made the link means by it. A link to anything else is refused.


@pytest.mark.parametrize("case", ["a link to a file", "a dangling link"])
def test_an_output_folder_link_that_leads_to_no_folder_is_refused(capsys, corpus, tmp_path, case):
    models, _ = corpus
    target = tmp_path / ("notes.txt" if case == "a link to a file" else "gone")
    if case == "a link to a file":
        _write(target, b"the user's notes")
    link = tmp_path / "latest"
    os.symlink(target, link)
    message = None  # a link to a file: click's own check of -o names it first
    if case == "a dangling link":
        message = (f"{link}: is a link to {target}, which does not exist; give a folder as the output, or change or "
                   "remove the link.")
    check_refused(capsys, ["report", models["good"], "-o", str(link)], str(tmp_path), _root(corpus), names=[link],
                  message=message)


def test_report_into_a_link_to_a_folder_writes_into_its_target(capsys, corpus, tmp_path):
    models, _ = corpus
    target = tmp_path / "runs" / "today"
    os.makedirs(target)
    link = tmp_path / "latest"
    os.symlink(target, link)
    status, _, err = run(capsys, ["report", models["good"], "-o", str(link)])
    assert (status, err) == (0, "")
    assert os.path.islink(link) and os.readlink(link) == str(target)
    assert sorted(os.listdir(tmp_path)) == ["latest", "runs"]  # no hidden leftover beside the link
    assert os.listdir(tmp_path / "runs") == ["today"]  # nor beside its target
    assert sorted(os.listdir(link)) == [".weightkit-output", "analysis.json", "figures", "index.html"]
    assert (target / "index.html").read_text().rstrip().endswith("</html>")


def test_force_replaces_an_output_folder_through_its_link(tmp_path):
    from weightkit.analysis.files.io import atomic_directory

    target = tmp_path / "runs" / "today"
    os.makedirs(target)
    _write(target / ".weightkit-output", b"")
    _write(target / "index.html", b"the earlier report")
    link = tmp_path / "latest"
    os.symlink(target, link)
    with atomic_directory(str(link), force=True) as folder:
        _write(os.path.join(folder, "index.html"), b"the new report")
    assert os.path.islink(link) and (link / "index.html").read_bytes() == b"the new report"
    assert sorted(os.listdir(tmp_path)) == ["latest", "runs"] and os.listdir(tmp_path / "runs") == ["today"]
