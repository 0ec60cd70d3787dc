"""``weightkit analyze --data``: dead neurons and activation groups on the command line and in the JSON."""

import json

import numpy as np
import pytest

from weightkit._common import run_cli
from weightkit.cli import cli


def run(capsys, *argv):
    """Run ``weightkit ARGV`` in process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    status = run_cli(cli, [str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def dead_path(keras, tmp_path_factory):
    """A 6-5-3 model whose hidden neurons 1 and 4 never fire on inputs in [0, 1), and its data."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((6,), name="pixels")
    hidden = keras.layers.Dense(5, activation="relu", name="hidden")
    outputs = keras.layers.Dense(3, activation="softmax", name="classes")(hidden(inputs))
    model = keras.Model(inputs, outputs, name="dead_mlp")
    kernel = np.abs(rng.normal(size=(6, 5))).astype(np.float32)
    bias = np.full(5, 0.1, dtype=np.float32)
    bias[[1, 4]] = -100.0
    hidden.set_weights([kernel, bias])
    folder = tmp_path_factory.mktemp("activations_cli")
    model.save(folder / "dead.keras")
    x = rng.random((120, 6)).astype(np.float32)
    np.savez(folder / "data.npz", x=x, y=rng.integers(0, 3, size=120))
    return str(folder / "dead.keras"), str(folder / "data.npz")


def test_analyze_data_json_gains_dead_and_activation(capsys, tmp_path, dead_path):
    model, data = dead_path
    plain, with_data = tmp_path / "plain.json", tmp_path / "data.json"
    assert run(capsys, "analyze", model, "--json", plain)[0] == 0
    status, out, err = run(capsys, "analyze", model, "--data", data, "--samples", "50", "--json", with_data)
    assert (status, err) == (0, "")
    before, after = json.loads(plain.read_text()), json.loads(with_data.read_text())
    for old, new in zip(before["layers"], after["layers"]):
        assert {key: new[key] for key in old} == old  # weight fields unchanged
        assert set(new) - set(old) == {"dead", "activation"}
    hidden = after["layers"][0]
    assert hidden["dead"] == [1, 4]
    assert set(hidden["activation"]) >= {"groups", "removable", "pearson"}
    assert hidden["activation"]["samples"] == 50
    assert isinstance(hidden["activation"]["pearson"]["mean_abs_offdiag"], float)
    assert after["notes"][-1] == f"activations: 50 seeded input samples of {data} (training split) (seed 0)"
    assert "hidden: dead on the sample (constant): 1, 4" in out
    assert "dead_mlp: what neurons do on 50 data samples" in out


def test_analyze_data_with_digits_and_layers(capsys, tmp_path, mlp_path):
    path = tmp_path / "a.json"
    status, out, err = run(capsys, "analyze", mlp_path, "--data", "sklearn:digits", "--layers", "hidden2",
                           "--samples", "200", "--json", path)
    assert (status, err) == (0, "")
    document = json.loads(path.read_text())
    assert [layer["name"] for layer in document["layers"]] == ["hidden2"]
    activation = document["layers"][0]["activation"]
    assert activation["removable"] == sum(len(group) - 1 for group in activation["groups"])


@pytest.mark.parametrize("argv, message", [
    (["--data", "sklearn:nope"], "weightkit analyze: error: --data sklearn:nope: unknown bundled dataset 'nope'; "
                                 "expected one of sklearn:digits, sklearn:iris, sklearn:wine, sklearn:breast_cancer, "
                                 "sklearn:diabetes.\n"),
    (["--data", "sklearn:iris"], "weightkit analyze: error: --data sklearn:iris: the model expects input of shape "
                                 "(batch, 6), the data has (batch, 4) (axis 1 is 4, expected 6); give data of the "
                                 "model's input shape.\n"),
])
def test_bad_data_is_one_line(capsys, dead_path, argv, message):
    status, out, err = run(capsys, "analyze", dead_path[0], *argv)
    assert (status, out, err) == (2, "", message)


def test_samples_must_be_positive(capsys, dead_path):
    status, _, err = run(capsys, "analyze", dead_path[0], "--data", dead_path[1], "--samples", "0")
    assert status == 2
    assert "--samples" in err and len(err.splitlines()) == 1
