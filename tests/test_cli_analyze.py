"""``weightkit analyze`` (and ``demo``) through the command line, in process and once as a script."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_model_analysis import EXPECTED, planted_dense_model

from weightkit._common import run_cli
from weightkit.cli import cli

HEADERS = ["layer", "type", "neurons", "fan-in", "params", "MACs", "mean |r|", "groups", "removable"]


@pytest.fixture(scope="module")
def planted_path(keras, tmp_path_factory):
    """The planted Dense model of test_model_analysis, saved as .keras. Read-only."""
    path = tmp_path_factory.mktemp("cli") / "planted.keras"
    planted_dense_model(keras).save(path)
    return str(path)


@pytest.fixture(scope="module")
def lambda_path(keras, tmp_path_factory):
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    outputs = keras.layers.Lambda(lambda t: t * 2.0, name="double")(hidden)
    path = tmp_path_factory.mktemp("cli") / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    return str(path)


def run(capsys, *argv):
    """Run ``weightkit ARGV`` in process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = run_cli(cli, [str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _table_lines(out):
    return [line for line in out.splitlines() if line.startswith("│")]


def _cells(line):
    return [cell.strip() for cell in line.strip("│").split("│")]


def test_analyze_prints_the_table_and_the_groups(capsys, planted_path):
    status, out, err = run(capsys, "analyze", planted_path)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].rstrip() == "planted_dense: redundant neurons (r ≥ 0.9)"
    header = next(line for line in lines if line.startswith("┃"))
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == HEADERS
    rows = [_cells(line) for line in _table_lines(out)]
    # fan-in 33: 32 inputs and the bias, which the rows include by default (issue 29 item 12)
    assert [row[:6] for row in rows] == [["planted", "Dense", "14", "33", "462", "448"],
                                         ["head", "Dense", "3", "15", "45", "42"]]
    assert [row[7:] for row in rows] == [["2", "4"], ["0", "0"]]
    assert "planted: 2 group(s): [0, 6, 7] [1, 8, 9]" in lines
    assert lines[-1] == ("total: 507 parameters; 4 removable neurons in 2 analyzed layer entries "
                         "(132 of their own parameters)")


def test_metric_mad(capsys, planted_path):
    status, out, err = run(capsys, "analyze", planted_path, "--metric", "mad")
    assert (status, err) == (0, "")
    assert out.splitlines()[0].rstrip() == "planted_dense: redundant neurons (MAD ≤ median × 0.2)"
    assert "planted: 2 group(s): [0, 6, 7] [12, 13]" in out.splitlines()


@pytest.mark.parametrize("argv", [["--layers", "head,planted"], ["--layers", "planted", "--layers", "head"]])
def test_layers_repeated_or_comma_separated(capsys, planted_path, argv):
    status, out, _ = run(capsys, "analyze", planted_path, *argv)
    assert status == 0
    assert [_cells(line)[0] for line in _table_lines(out)] == ["planted", "head"]


def test_threshold(capsys, planted_path):
    status, out, _ = run(capsys, "analyze", planted_path, "--threshold", "-1", "--layers", "planted")
    assert status == 0
    assert f"planted: 1 group(s): {list(range(14))}" in out.splitlines()
    assert [_cells(line)[0] for line in _table_lines(out)] == ["planted"]


@pytest.mark.parametrize("argv, message", [
    (["--layers", "nope"], ("weightkit analyze: error: --layers: no analyzable layer named 'nope'; available: "
                           "head, planted.")),
    (["--metric", "cosine"], ("weightkit analyze: error: Invalid value for '--metric': 'cosine' is not one of "
                             "'pearson', 'mad'. (see 'weightkit analyze --help')")),
    (["--threshold", "2"], ("weightkit analyze: error: A Pearson threshold must be in [-1, 1], got 2.0; 0.9 is "
                           "the default.")),
    (["--threshold", "nan", "--metric", "mad"], ("weightkit analyze: error: Invalid value for '--threshold': nan is "
                                                "not a finite number; give a finite number. (see 'weightkit analyze "
                                                "--help')")),
])
def test_bad_options_exit_2_with_one_line(capsys, planted_path, argv, message):
    status, out, err = run(capsys, "analyze", planted_path, *argv)
    assert (status, out, err) == (2, "", message + "\n")


def _check_schema(document):
    assert set(document) >= {"model", "metric", "threshold", "layers", "skipped", "totals"}
    assert isinstance(document["model"], str) and isinstance(document["metric"], str)
    assert isinstance(document["threshold"], float)
    types = {"name": str, "type": str, "neurons": int, "fan_in": int, "params": int, "macs": int,
             "groups": list, "removable": int, "pearson": dict, "mad": dict}
    for layer in document["layers"]:
        assert set(layer) >= set(types)
        for key, kind in types.items():
            assert type(layer[key]) is kind, key
        assert all(type(i) is int for group in layer["groups"] for i in group)
        assert set(layer["pearson"]) >= {"mean_abs_offdiag", "max_offdiag"}
        assert set(layer["mad"]) >= {"median_offdiag", "min_offdiag"}
        assert all(type(v) is float for v in [*layer["pearson"].values(), *layer["mad"].values()])
    for skipped in document["skipped"]:
        assert set(skipped) >= {"name", "type", "reason"}
        assert all(type(skipped[key]) is str for key in ("name", "type", "reason"))
    assert type(document["totals"]["params"]) is int and type(document["totals"]["removable"]) is int


@pytest.mark.parametrize("metric", ["pearson", "mad"])
def test_json_output(capsys, planted_path, tmp_path, metric):
    path = tmp_path / "result.json"
    status, _, err = run(capsys, "analyze", planted_path, "--metric", metric, "--json", path)
    assert (status, err) == (0, "")
    document = json.loads(path.read_text())
    _check_schema(document)
    assert (document["model"], document["metric"], document["threshold"]) == (
        "planted_dense", metric, {"pearson": 0.9, "mad": 0.2}[metric])
    planted = document["layers"][0]
    assert (planted["name"], planted["type"], planted["neurons"], planted["fan_in"]) == ("planted", "Dense", 14, 33)
    assert (planted["params"], planted["macs"]) == (462, 448)
    assert planted["groups"] == EXPECTED[metric]
    assert planted["removable"] == {"pearson": 4, "mad": 3}[metric]
    assert planted["pearson"]["max_offdiag"] == pytest.approx(1.0)
    assert document["skipped"] == []
    assert document["totals"]["params"] == 507
    assert document["totals"]["removable"] == planted["removable"]
    assert sorted(os.listdir(tmp_path)) == ["result.json"]  # no temporary left behind


def test_json_lists_skipped_layers(capsys, keras, tmp_path):
    inputs = keras.Input((6,))
    x = keras.layers.BatchNormalization(name="bn")(inputs)
    x = keras.layers.Dense(4, name="dense")(x)
    outputs = keras.layers.Dense(1, name="single")(x)
    model_path = tmp_path / "skips.keras"
    keras.Model(inputs, outputs, name="skips").save(model_path)
    json_path = tmp_path / "skips.json"
    status, out, err = run(capsys, "analyze", model_path, "--json", json_path)
    assert (status, err) == (0, "")
    document = json.loads(json_path.read_text())
    _check_schema(document)
    assert [(s["name"], s["type"], s["reason"]) for s in document["skipped"]] == [
        ("bn", "BatchNormalization", "normalization layer: per-channel scale and shift, no neurons"),
        ("single", "Dense", "only one neuron: nothing to compare it with")]
    assert "skipped bn (BatchNormalization, 24 params): normalization layer: per-channel scale and shift, " \
           "no neurons" in out.splitlines()
    assert "skipped single (Dense, 5 params, 4 MACs): only one neuron: nothing to compare it with" in out.splitlines()


def test_include_bias(capsys, planted_path, tmp_path):
    path = tmp_path / "bias.json"
    status, _, _ = run(capsys, "analyze", planted_path, "--include-bias", "--json", path)
    assert status == 0
    document = json.loads(path.read_text())
    assert [layer["fan_in"] for layer in document["layers"]] == [33, 15]
    assert document["include_bias"] is True


def test_existing_json_refused_without_force(capsys, planted_path, tmp_path):
    path = tmp_path / "result.json"
    path.write_text("keep me")
    status, out, err = run(capsys, "analyze", planted_path, "--json", path)
    assert (status, out) == (2, "")
    assert err == (f"weightkit analyze: error: {path}: already exists; pass --force to replace it or choose "
                   "another path.\n")
    assert path.read_text() == "keep me"
    status, _, _ = run(capsys, "analyze", planted_path, "--json", path, "--force")
    assert status == 0 and json.loads(path.read_text())["model"] == "planted_dense"


def test_json_never_overwrites_the_model(capsys, planted_path, tmp_path):
    model = tmp_path / "model.keras"
    shutil.copy(planted_path, model)
    before = model.read_bytes()
    status, out, err = run(capsys, "analyze", model, "--json", model, "--force")
    assert (status, out) == (2, "")
    assert err == (f"weightkit analyze: error: --json {model}: is the model file itself; choose another path "
                   "for the JSON.\n")
    assert model.read_bytes() == before


def test_same_input_gives_byte_identical_json(capsys, planted_path, tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert run(capsys, "analyze", planted_path, "--json", first)[0] == 0
    assert run(capsys, "analyze", planted_path, "--json", second)[0] == 0
    assert first.read_bytes() == second.read_bytes()


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, planted_path):
    folder = tmp_path_factory.mktemp("bad_cli")
    (folder / "empty.keras").write_bytes(b"")
    (folder / "random.h5").write_bytes(os.urandom(256))
    data = Path(planted_path).read_bytes()
    (folder / "truncated.keras").write_bytes(data[: len(data) // 3])
    os.makedirs(folder / "folder")
    return {
        "missing": (folder / "missing.keras", "no such file; check the path to the model (.keras or .h5)."),
        "empty": (folder / "empty.keras", "is an empty file, not a model; save the model again."),
        "random": (folder / "random.h5", ("is not an HDF5 file (unrecognized content); check that the file is a "
                                         "saved Keras model and was copied completely.")),
        "truncated": (folder / "truncated.keras", ("corrupt or truncated .keras archive (File is not a zip file); "
                                                  "copy or save the model again.")),
        "folder": (folder / "folder", "is a directory, not a model file; give the path of a .keras or .h5 file."),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "random", "truncated", "folder"])
def test_bad_model_exit_2_one_line_no_traceback(capsys, bad_inputs, case):
    path, problem = bad_inputs[case]
    status, out, err = run(capsys, "analyze", path)
    assert (status, out) == (2, "")
    assert err == f"weightkit analyze: error: {path}: {problem}\n"


def test_debug_shows_the_traceback(capsys, bad_inputs):
    path, problem = bad_inputs["missing"]
    status, _, err = run(capsys, "analyze", path, "--debug")
    assert status == 2
    assert err.startswith("Traceback (most recent call last):")
    assert "weightkit.analysis.errors.WeightkitError" in err
    assert err.endswith(f"weightkit analyze: error: {path}: {problem}\n")
    # --debug does not stick to later runs in the same process.
    assert run(capsys, "analyze", path)[2] == f"weightkit analyze: error: {path}: {problem}\n"


def test_lambda_listed_as_skipped_never_run_and_unsafe_changes_nothing(capsys, lambda_path):
    """Weight analysis reads the file as data: a Lambda layer is listed, its code never runs."""
    status, out, err = run(capsys, "analyze", lambda_path)
    assert (status, err) == (0, "")
    assert [_cells(line)[0] for line in _table_lines(out)] == ["hidden"]
    assert ("skipped double (Lambda): Lambda layer: its code is stored in the file and is not run (weight analysis "
            "reads only data)") in out.splitlines()
    status, unsafe_out, err = run(capsys, "analyze", lambda_path, "--unsafe")
    assert (status, unsafe_out) == (0, out)
    assert err == ("weightkit: --unsafe changes nothing for weight analysis: the file is read as data and none of its "
                   "code runs.\n")
    status, out, err = run(capsys, "analyze", lambda_path, "--data", "sklearn:iris")  # running it needs Keras: refused
    assert (status, out) == (2, "")
    assert err == (f"weightkit analyze: error: {lambda_path}: layer 'double' is a Lambda layer, whose code would "
                   "run while loading; refused in safe mode: pass --unsafe (unsafe=True) only if you trust the "
                   "file.\n")


def test_h5_model(capsys, keras, tmp_path):
    path = tmp_path / "planted.h5"
    planted_dense_model(keras).save(path)
    status, out, _ = run(capsys, "analyze", path)
    assert status == 0
    assert "planted: 2 group(s): [0, 6, 7] [1, 8, 9]" in out.splitlines()


def _quiet_env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def test_installed_console_script(planted_path):
    script = os.path.join(os.path.dirname(sys.executable), "weightkit")  # the venv's, whatever PATH holds
    assert os.path.isfile(script), "the weightkit console script is not installed (pip install -e .)"
    done = subprocess.run([script, "analyze", planted_path], capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0
    assert done.stderr == ""
    assert "planted: 2 group(s): [0, 6, 7] [1, 8, 9]" in done.stdout
    assert any(line.startswith("│ planted ") for line in done.stdout.splitlines())


def test_help_does_not_import_tensorflow():
    code = textwrap.dedent("""
        import sys
        from weightkit.cli import cli
        from weightkit._common import run_cli
        for argv in (["--help"], ["analyze", "--help"], ["demo", "--help"]):
            assert run_cli(cli, argv) == 0, argv
        # `analysis` itself may be imported (its names load on first use); nothing heavy may be.
        heavy = sorted(name for name in ("tensorflow", "keras", "numpy", "scipy", "h5py",
                                        "weightkit.analysis.model_analysis") if name in sys.modules)
        assert not heavy, heavy
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "Usage: weightkit [OPTIONS] COMMAND [ARGS]..." in done.stdout
    assert "analyze" in done.stdout and "--include-bias" in done.stdout


def test_python_dash_m_weightkit():
    done = subprocess.run([sys.executable, "-m", "weightkit", "--version"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "weightkit, version 0.1.0\n", "")


def test_console_prints_every_group():
    from weightkit.reports.console import format_groups

    groups = [[2 * i, 2 * i + 1] for i in range(20)]
    assert format_groups(groups) == " ".join(f"[{2 * i}, {2 * i + 1}]" for i in range(20))
    assert format_groups(groups, limit=2) == "[0, 1] [2, 3] … and 18 more"
    assert format_groups([]) == ""
