"""One bias default for every command that compares neuron rows (issue 29 item 12): the bias is in the rows.

A planted model where the bias decides: ``hidden`` neurons 0 and 1 share a kernel but have opposite biases (a
pair only without the bias), neuron 3 is neuron 2 doubled, bias included (a pair either way, merged exactly).
"""

import json

import numpy as np
import pytest

from weightkit._common import run_cli
from weightkit.cli import cli


@pytest.fixture(scope="module")
def planted(keras, tmp_path_factory):
    rng = np.random.default_rng(0)
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(5, activation="relu", name="hidden")
    outputs = keras.layers.Dense(2, name="out")(hidden(inputs))
    model = keras.Model(inputs, outputs, name="bias_planted")
    kernel = rng.normal(0.0, 0.3, (6, 5)).astype(np.float32)
    bias = rng.normal(0.0, 0.1, 5).astype(np.float32)
    kernel[:, 1] = kernel[:, 0]
    bias[0], bias[1] = 2.0, -2.0
    kernel[:, 3], bias[3] = 2.0 * kernel[:, 2], 2.0 * bias[2]
    hidden.set_weights([kernel, bias])
    path = tmp_path_factory.mktemp("bias") / "planted.keras"
    model.save(path)  # every command reads it back from the file
    return str(path)


def _run(argv):
    assert run_cli(cli, [str(arg) for arg in argv]) == 0


@pytest.mark.parametrize(("flags", "bias", "removable"), [([], True, 1), (["--include-bias"], True, 1),
                                                          (["--exclude-bias"], False, 2)])
def test_analyze_and_report_take_both_flags(planted, tmp_path, flags, bias, removable):
    _run(["analyze", planted, "--json", tmp_path / "a.json", *flags])
    _run(["report", planted, "-o", tmp_path / "report", *flags])
    for document in (json.loads((tmp_path / "a.json").read_text()),
                     json.loads((tmp_path / "report" / "analysis.json").read_text())):
        assert (document["include_bias"], document["layers"][0]["name"]) == (bias, "hidden")
        assert document["layers"][0]["removable"] == removable


@pytest.mark.parametrize("flags", [[], ["--include-bias"]])
def test_analyze_counts_what_merge_removes_by_default(planted, tmp_path, flags):
    _run(["analyze", planted, "--json", tmp_path / "a.json"])
    _run(["merge", planted, "-o", tmp_path / "m.keras", *flags])
    analysis = json.loads((tmp_path / "a.json").read_text())
    merged = json.loads((tmp_path / "m.json").read_text())
    assert analysis["totals"]["removable"] == merged["totals"]["neurons_removed"] == 1
    assert merged["layers"][0]["left_alone"] == []


def test_merge_still_takes_exclude_bias(planted, tmp_path):
    """Without the bias, neurons 0 and 1 are a group too; merge then refuses it (α < 0 under ReLU) and says so."""
    _run(["merge", planted, "-o", tmp_path / "m.keras", "--exclude-bias"])
    merged = json.loads((tmp_path / "m.json").read_text())
    assert merged["totals"]["neurons_removed"] == 1
    assert len(merged["layers"][0]["left_alone"]) == 1
