"""keras.applications networks (weights=None, 32x32 inputs) merge by weights at --ratio 0.25 (slow).

Every coupled group (several producers tied by residual Adds) whose nonlinearities let scaled
copies merge shrinks (under swish or ReLU6 only twins merge by weights), the command exits 0, and
the merged model loads back and runs. Random weights: the merges are not exact, only the
mechanics (walk, fold, cut, rebuild) are tested here.
"""

import json

import numpy as np
import pytest

from weightkit._common import run_cli
from weightkit.cli import cli

APPLICATIONS = ["ResNet50", "MobileNetV2", "EfficientNetB0", "DenseNet121"]


@pytest.mark.slow
@pytest.mark.parametrize("name", APPLICATIONS)
def test_application_merges_by_weights_with_every_coupled_group_shrinking(keras, tmp_path, capsys, name):
    keras.utils.set_random_seed(0)
    model = getattr(keras.applications, name)(weights=None, input_shape=(32, 32, 3), classes=10)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    out = tmp_path / "merged.keras"
    status = run_cli(cli, ["merge", str(path), "-o", str(out), "--ratio", "0.25", "-q"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    document = json.loads((tmp_path / "merged.json").read_text())
    coupled = [layer for layer in document["layers"] if len(layer.get("group", {}).get("producers", [])) > 1]
    if name != "DenseNet121":  # DenseNet couples through concatenations, not joins: one producer per group
        assert coupled
    # Under swish or ReLU6 (not positively homogeneous) only twins merge by weights: those groups may stay.
    assert all(layer["neurons"]["after"] < layer["neurons"]["before"] for layer in coupled if layer["rule"] != "twin")
    assert any(layer["neurons"]["after"] < layer["neurons"]["before"] for layer in coupled) or not coupled
    assert document["totals"]["params_after"] < document["totals"]["params_before"]
    merged = keras.saving.load_model(out)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    assert np.isfinite(merged.predict(x, verbose=0)).all()
