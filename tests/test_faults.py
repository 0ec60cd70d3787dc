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

from weightkit._common import run_cli
from weightkit.cli import cli

EPOCHS = 4


def run(capsys, argv):
    capsys.readouterr()
    status = run_cli(cli, [str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


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
    # Nothing at any final path; only the hidden backup folder.
    assert sorted(os.listdir(tmp_path)) == [".retrained.keras.retrain"]

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

    from analysis import load_model

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
