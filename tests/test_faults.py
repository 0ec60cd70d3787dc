"""Interrupted runs: SIGKILL mid-retrain, mid-report, mid-quantize; same inputs twice give the same bytes.

The killed run is a real ``python -m weightkit`` process; the work folder is polled and the process
is killed with SIGKILL (no handler can run) at a known point. The rerun happens in process.
"""

import glob
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
from refusal_checks import run

EPOCHS = 4


def _start(argv):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "weightkit", *map(str, argv)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(process, ready, timeout=90):
    """SIGKILL ``process`` as soon as ``ready()`` is true; fail if it ends or times out first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the run ended (status {process.returncode}) before the point to kill it: "
                        f"{process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out waiting for the point to kill the run")
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL


@pytest.fixture(scope="module")
def digits_model_path(keras, tmp_path_factory):
    """A small untrained 64-32-10 softmax MLP for digits, compiled. Read-only."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="out")(hidden), name="digits")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    path = tmp_path_factory.mktemp("faults") / "digits.keras"
    model.save(path)
    return str(path)


def _backup_epoch(work):
    try:
        with open(os.path.join(work, "training_metadata.json")) as handle:
            return int(json.load(handle)["epoch"])
    except (OSError, ValueError, KeyError):
        return 0  # not written yet, or caught mid-write


def test_retrain_killed_between_epochs_resumes_with_the_remaining_epochs(capsys, digits_model_path, tmp_path):
    output = tmp_path / "retrained.keras"
    work = tmp_path / ".retrained.keras.retrain"
    argv = ["retrain", digits_model_path, "--data", "sklearn:digits", "-o", output, "--epochs", EPOCHS,
            "--batch-size", "16"]
    process = _start(argv)
    _kill_when(process, lambda: _backup_epoch(work) >= 1)
    done = _backup_epoch(work)
    assert 1 <= done < EPOCHS
    # Nothing at any final path; only the hidden backup folder and the lock file, which the kernel unlocked.
    assert sorted(os.listdir(tmp_path)) == [".retrained.keras.lock", ".retrained.keras.retrain"]

    status, _, err = run(capsys, argv)
    assert (status, err) == (2, (f"weightkit retrain: error: {output}: an interrupted run left its backup in "
                                 f"{work}; pass --resume to continue it or --force to start over.\n"))
    status, _, err = run(capsys, argv + ["--resume"])
    assert status == 0, err
    epochs_run = [line for line in err.splitlines() if line.startswith("weightkit: epoch ")]
    assert [line.split()[2].rstrip(":") for line in epochs_run] == [f"{e}/{EPOCHS}" for e in range(done + 1,
                                                                                                    EPOCHS + 1)]
    document = json.loads((tmp_path / "retrained.json").read_text())
    assert document["initial_epoch"] == done
    assert document["history"]["epoch"] == list(range(1, EPOCHS + 1))
    assert all(len(values) == EPOCHS for key, values in document["history"].items()
               if not key.startswith("redundancy/"))
    assert sorted(os.listdir(tmp_path)) == ["retrained.json", "retrained.keras", "retrained.png"]

    from weightkit.analysis import load_model

    assert load_model(output).model.get_layer("hidden").units == 32


def _part_folders(parent, name):
    return glob.glob(os.path.join(parent, f".{name}.*.part"))


def test_report_killed_mid_run_leaves_no_report_and_a_rerun_succeeds(capsys, digits_model_path, tmp_path):
    output = tmp_path / "report"
    argv = ["report", digits_model_path, "-o", output]
    process = _start(argv)
    # The temporary folder exists from before the analysis to the final rename: mid-run.
    _kill_when(process, lambda: _part_folders(tmp_path, "report"))
    assert not output.exists()
    leftovers = _part_folders(tmp_path, "report")
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in leftovers)

    status, _, err = run(capsys, argv)
    assert (status, err) == (0, "")
    assert sorted(os.listdir(output)) == [".weightkit-output", "analysis.json", "figures", "index.html"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(output).st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert (output / "index.html").read_text().rstrip().endswith("</html>")


@pytest.mark.parametrize("extra", [[], ["--metric", "mad", "--data", "sklearn:digits", "--samples", "300"]])
def test_same_inputs_and_seed_give_byte_identical_analyze_json(capsys, digits_model_path, tmp_path, extra):
    documents = []
    for name in ("first.json", "second.json"):
        status, _, err = run(capsys, ["analyze", digits_model_path, "--json", tmp_path / name, *extra])
        assert (status, err) == (0, "")
        documents.append((tmp_path / name).read_bytes())
    assert documents[0] == documents[1]
    if extra:
        assert b'"activation"' in documents[0]


def test_quantize_killed_mid_run_leaves_no_output_folder_and_a_rerun_succeeds(capsys, digits_model_path, tmp_path):
    output = tmp_path / "quantized"
    argv = ["quantize", digits_model_path, "-o", output, "--data", "sklearn:digits", "--modes", "float32,dynamic,int8"]
    process = _start(argv)
    # The temporary folder exists from before the first conversion to the final rename: mid-run.
    _kill_when(process, lambda: _part_folders(tmp_path, "quantized"))
    assert not output.exists()
    leftovers = _part_folders(tmp_path, "quantized")
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in leftovers)

    status, _, err = run(capsys, argv)
    assert status == 0, err
    files = sorted(os.listdir(output))
    assert {"comparison.json", "model.tflite"} <= set(files)
    assert not [name for name in files if ".part" in name]
    json.loads((output / "comparison.json").read_text())


# A run killed between renaming OUT.keras and OUT.json (issue 17 item 11). The kill is real (SIGKILL of a
# child process); the child runs the output set's own commit and kills itself after the first rename.
_KILLED_BETWEEN_RENAMES = r"""
import os, signal, sys
import weightkit.output_sets as sets
from weightkit.analysis.files.io import OUTPUT_MARKER
output, work = sys.argv[1], sys.argv[2]
stem = os.path.splitext(output)[0]
os.makedirs(work)
open(os.path.join(work, OUTPUT_MARKER), "w").close()
open(os.path.join(work, "training_metadata.json"), "w").write('{"epoch": 2, "batch": 0}')
finish, renamed = sets._finish, []
def finish_then_die(temporary, path, replace):
    finish(temporary, path, replace)
    renamed.append(path)
    if len(renamed) == 1:
        os.kill(os.getpid(), signal.SIGKILL)
sets._finish = finish_then_die
with sets.OutputSet([output, stem + ".json", stem + ".png"], journal=os.path.join(work, "outputs.json")) as outputs:
    for path in (output, stem + ".json", stem + ".png"):
        open(outputs[path], "wb").write(("the killed run's " + path).encode())
    outputs.commit()
"""


def _killed_between_renames(tmp_path):
    output, work = tmp_path / "r.keras", tmp_path / ".r.keras.retrain"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", _KILLED_BETWEEN_RENAMES, str(output), str(work)],
                          env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    return output, work


def test_retrain_killed_between_renaming_its_outputs_is_completed_by_resume(capsys, digits_model_path, tmp_path):
    output, work = _killed_between_renames(tmp_path)
    assert output.exists() and not (tmp_path / "r.json").exists()
    argv = ["retrain", digits_model_path, "--data", "sklearn:digits", "-o", output, "--epochs", "2"]
    status, _, err = run(capsys, argv)
    assert (status, err) == (2, (f"weightkit retrain: error: {output}: a killed run finished training but not "
                                 f"renaming its outputs (recorded in {work / 'outputs.json'}); pass --resume to "
                                 f"complete them, or --force to start over, which removes {work} and the outputs that "
                                 "still hold that run's bytes.\n"))
    status, out, err = run(capsys, argv + ["--resume"])
    assert (status, err) == (0, "")
    assert out.startswith("--resume: the killed run had finished; completed")
    assert sorted(os.listdir(tmp_path)) == ["r.json", "r.keras", "r.png"]
    for name in ("r.keras", "r.json", "r.png"):
        assert (tmp_path / name).read_text() == f"the killed run's {tmp_path / name}"


def test_force_removes_only_what_the_killed_run_wrote(tmp_path):
    from weightkit.output_sets import discard_set

    output, work = _killed_between_renames(tmp_path)
    output.write_bytes(b"the user's own model, saved over it since")
    removed = discard_set(str(work / "outputs.json"))
    assert output.read_bytes() == b"the user's own model, saved over it since"
    assert len(removed) == 2 and not [p for p in removed if not os.path.basename(p).startswith(".r.")]
    assert sorted(os.listdir(tmp_path)) == [".r.keras.retrain", "r.keras"]


# Disk full (issue 17 item 10), for real but without root: a child process under a file-size limit
# (RLIMIT_FSIZE, set per command), where a write past the limit fails with EFBIG ("File too large") as a full disk
# fails with ENOSPC; Python ignores the SIGXFSZ that comes with it. stderr is captured at the descriptor.
_UNDER_A_SIZE_LIMIT = r"""
import contextlib, io, json, os, resource, sys, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from weightkit._common import run_cli
from weightkit.cli import cli
results, saved = [], os.dup(2)
for limit, argv in json.loads(sys.argv[1]):
    with tempfile.TemporaryFile() as err, contextlib.redirect_stdout(io.StringIO()):
        sys.stderr.flush()
        os.dup2(err.fileno(), 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        status = run_cli(cli, argv)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        sys.stderr.flush()
        os.dup2(saved, 2)
        err.seek(0)
        results.append([status, err.read().decode()])
print(json.dumps(results))
"""


@pytest.mark.slow
def test_a_full_disk_is_one_line_leaves_nothing_half_written_and_retrain_resumes(capsys, corpus, tmp_path):
    """1 KB: every output fails. 40 KB: retrain's backup (21.7 KB) and OUT.keras fit, OUT.png (48 KB) does not."""
    models, data = corpus
    good, npz = models["good"], data["good"]
    out = {name: tmp_path / name for name in ("analyze", "report", "merge", "quantize", "retrain", "resumable")}
    for folder in out.values():
        folder.mkdir()
    cases = [
        (1024, ["analyze", good, "--json", out["analyze"] / "a.json"], out["analyze"] / "a.json"),
        (1024, ["report", good, "-o", out["report"] / "report"], out["report"] / "report"),
        (1024, ["merge", good, "-o", out["merge"] / "m.keras"], out["merge"] / "m.keras"),
        # quantize fills the temporary folder first, exporting the SavedModel the converter reads.
        (1024, ["quantize", good, "-o", out["quantize"] / "q", "--modes", "float32", "-q"], None),
        (1024, ["retrain", good, "--data", npz, "-o", out["retrain"] / "r.keras", "--epochs", "1", "-q"],
         out["retrain"] / ".r.keras.retrain" / "latest.weights.h5"),
        (40_000, ["retrain", good, "--data", npz, "-o", out["resumable"] / "r.keras", "--epochs", "1", "-q"],
         out["resumable"] / "r.png"),
    ]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", _UNDER_A_SIZE_LIMIT,
                           json.dumps([[limit, [str(a) for a in argv]] for limit, argv, _ in cases])],
                          env={**os.environ, "PYTHONPATH": root}, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    fix = "free space or choose another output folder, nothing was left half-written"
    for (_, argv, path), (status, err) in zip(cases, json.loads(done.stdout.splitlines()[-1])):
        lines = err.splitlines()
        assert status == 2 and len(lines) == 1, err
        if path is None:
            assert "no space left on device (file too large) while exporting the model for the TFLite converter; " \
                   "free space in that folder or set TMPDIR to a folder with room." in lines[0], lines[0]
            continue
        assert lines[0].startswith(f"weightkit {argv[0]}: error: {path}: no space left on device (file too large); "
                                   f"{fix}"), lines[0]
    for name in ("analyze", "report", "merge", "quantize", "retrain"):
        assert os.listdir(out[name]) == [], name
    work = out["resumable"] / ".r.keras.retrain"
    assert err.endswith(f"; the finished epochs are kept in {work}: free space and rerun with --resume\n")
    assert sorted(os.listdir(out["resumable"])) == [".r.keras.retrain"]
    status, _, err = run(capsys, cases[-1][1][:-1] + ["--resume"])
    assert status == 0, err
    assert sorted(os.listdir(out["resumable"])) == ["r.json", "r.keras", "r.png"]
    assert json.loads((out["resumable"] / "r.json").read_text())["initial_epoch"] == 1


# --------------------------------------------------------------------------------------------------
# shrink's lock and checkpoints (issue 29 item 3)


def test_a_dead_runs_lock_file_is_taken_over(capsys, corpus, tmp_path):
    """flock: a lock file whose process is gone holds no lock; the next run takes it (and removes it at its end)."""
    models, data = corpus
    output = tmp_path / "small"
    work = tmp_path / ".small.shrink"
    work.mkdir()
    (work / ".weightkit-output").write_bytes(b"")
    (work / "state.json").write_text('{"settings": {}, "stages": {"original": {}}}')
    (tmp_path / ".small.lock").write_text("99999999")  # a killed run's
    status, _, err = run(capsys, ["shrink", models["good"], "--data", data["good"], "-o", output])
    assert (status, err) == (2, f"weightkit shrink: error: {output}: an interrupted run left its checkpoints in "
                                f"{work}; pass --resume to continue it or --force to start over.\n")
    assert sorted(os.listdir(tmp_path)) == [".small.shrink"]


@pytest.fixture(scope="module")
def unshrinkable_model_path(keras, tmp_path_factory):
    """A 64→10 softmax with no hidden layer: shrink refuses it after its first stage has been checkpointed."""
    inputs = keras.Input((64,))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="out")(inputs), name="flat")
    path = tmp_path_factory.mktemp("flat") / "flat.keras"
    model.save(path)
    return str(path)


def test_a_refused_shrink_leaves_no_checkpoint(capsys, unshrinkable_model_path, tmp_path):
    """Its rerun must say the same, not that an interrupted run left checkpoints for --resume (which would refuse)."""
    output = tmp_path / "small"
    argv = ["shrink", unshrinkable_model_path, "--data", "sklearn:digits", "-o", output, "--fine-tune-epochs", "0",
            "--modes", "float32", "-q"]
    status, _, err = run(capsys, argv)
    # The reason's wording belongs to the sensitivity stage; here it matters that it is the one line, and alone.
    assert status == 2 and err.count("\n") == 1, err
    assert err.startswith("weightkit shrink: error: model 'flat': no layer data-aware merging can shrink "), err
    assert os.listdir(tmp_path) == []
