"""``analyze`` on real architectures: keras.applications with random weights (no download).

Slow (each takes tens of seconds on 2 cores): run with ``python -m pytest -m slow tests/test_big_models.py``.
The default input shapes are used, so MACs are those of the published architectures.
"""

import time

import pytest

from weightkit.analysis import analyze, load_model
from weightkit._common import run_cli
from weightkit.cli import cli

# Published sizes: MobileNetV2 (alpha 1.0, 224x224) 3,538,984 parameters and about 300 M MACs;
# ResNet50 25,636,712 parameters and about 3.9 G MACs (multiply-adds) per image.
ARCHITECTURES = {
    "MobileNetV2": {"params": 3_538_984, "macs": (2.9e8, 3.2e8), "min_entries": 50},
    "ResNet50": {"params": 25_636_712, "macs": (3.8e9, 4.2e9), "min_entries": 50},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_analyze_keras_applications(keras, tmp_path, capsys, name):
    expected = ARCHITECTURES[name]
    model = getattr(keras.applications, name)(weights=None)
    assert model.count_params() == expected["params"]
    path = tmp_path / f"{name}.keras"
    model.save(path)

    start = time.perf_counter()
    result = analyze(load_model(path, compile=False).model, path=str(path))
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n{name}: load + analyze {seconds:.1f} s, {len(result.layers)} entries, "
              f"{len(result.skipped)} skipped")

    assert result.total_params == expected["params"]
    assert len(result.layers) >= expected["min_entries"]
    skipped_types = {skipped.type for skipped in result.skipped}
    assert skipped_types <= {"BatchNormalization", "Dense", "Conv2D"}, skipped_types
    assert all(skipped.reason for skipped in result.skipped)
    macs = sum(layer.macs for layer in result.layers) + sum(s.macs or 0 for s in result.skipped)
    low, high = expected["macs"]
    assert low <= macs <= high, macs
    # Every analyzed parameter belongs to exactly one entry or one skipped layer.
    counted = sum(layer.params for layer in result.layers) + sum(s.params or 0 for s in result.skipped)
    assert counted == expected["params"]
    for layer in result.layers:
        assert layer.neurons >= 2 and layer.removable == sum(len(g) - 1 for g in layer.groups)

    capsys.readouterr()
    start = time.perf_counter()
    status = run_cli(cli, ["analyze", str(path), "--metric", "mad", "--json", str(tmp_path / "out.json")])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.splitlines()[-1].startswith(f"total: {expected['params']:,} parameters;")
    with capsys.disabled():
        print(f"{name}: weightkit analyze --metric mad {seconds:.1f} s (load + analyze + print)")
