"""`weightkit merge` through the CLI: outputs, JSON, --force, exit codes and one-line errors."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from weightkit._common import run_cli
from weightkit.cli import cli


def _digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def test_merge_writes_smaller_model_and_json(mlp_path, tmp_path, capsys, keras):
    out = tmp_path / "small.keras"
    before = _digest(mlp_path)
    status = run_cli(cli, ["merge", mlp_path, "-o", str(out), "--ratio", "0.5", "--data", "sklearn:digits", "-q"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert _digest(mlp_path) == before  # input untouched
    document = json.loads((tmp_path / "small.json").read_text())
    assert [(l["name"], l["neurons"]) for l in document["layers"]] == [
        ("hidden1", {"before": 64, "after": 32}), ("hidden2", {"before": 64, "after": 32})]
    assert document["totals"]["params_after"] < document["totals"]["params_before"]
    assert set(document["evaluation"]) >= {"accuracy_before", "accuracy_after", "agreement"}
    assert document["output"] == str(out)
    small = keras.models.load_model(out)
    assert small.get_layer("hidden1").units == 32
    assert small.count_params() == document["totals"]["params_after"]
    assert "hidden1" in captured.out and "accuracy" in captured.out
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")]  # no temporary left


def test_existing_output_refused_without_force(mlp_path, tmp_path, capsys):
    out = tmp_path / "small.keras"
    out.write_bytes(b"keep me")
    status = run_cli(cli, ["merge", mlp_path, "-o", str(out)])
    assert status == 2
    assert capsys.readouterr().err == (f"weightkit merge: error: {out}: already exists; pass --force to replace it "
                                       "or choose another path.\n")
    assert out.read_bytes() == b"keep me"
    assert run_cli(cli, ["merge", mlp_path, "-o", str(out), "--force", "-q"]) == 0
    assert out.read_bytes()[:2] == b"PK"


@pytest.mark.parametrize("extra, message", [
    (["--threshold", "0.9", "--ratio", "0.5"],
     "--threshold and --ratio: give one of them, not both; --threshold merges every group found, --ratio removes "
     "a fixed share of each layer."),
    (["--ratio", "0"], "--ratio 0.0: must be between 0 and 1 (the share of each layer's neurons to remove), e.g. 0.5."),
    (["--layers", "nope"], "--layers: no analyzable layer named 'nope'; available: classes, hidden1, hidden2."),
])
def test_bad_options_give_one_line(mlp_path, tmp_path, capsys, extra, message):
    status = run_cli(cli, ["merge", mlp_path, "-o", str(tmp_path / "m.keras")] + extra)
    assert status == 2
    assert capsys.readouterr().err == f"weightkit merge: error: {message}\n"
    assert not (tmp_path / "m.keras").exists()


def test_output_must_be_keras_archive(mlp_path, tmp_path, capsys):
    assert run_cli(cli, ["merge", mlp_path, "-o", str(tmp_path / "m.h5")]) == 2
    assert capsys.readouterr().err == (f"weightkit merge: error: -o {tmp_path / 'm.h5'}: the merged model is saved "
                                       "as a Keras 3 archive; give a name ending in .keras.\n")


def test_console_script_threshold_mode(cnn_path, tmp_path):
    out = tmp_path / "cnn_small.keras"
    script = os.path.join(os.path.dirname(sys.executable), "weightkit")
    result = subprocess.run([script, "merge", cnn_path, "-o", str(out), "--metric", "mad", "-q"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    document = json.loads((tmp_path / "cnn_small.json").read_text())
    assert {layer["name"] for layer in document["layers"]} == {"conv1", "conv2", "dense"}
    assert {s["name"]: s["reason"] for s in document["skipped"]} == {
        "classes": "its output is (on the way to) a model output"}
