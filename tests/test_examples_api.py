"""The Python API walkthrough (examples/walkthrough.py) runs, and uses the package-level API only."""

import ast
import importlib
import importlib.util
import os

import numpy as np
import pytest

WALKTHROUGH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "walkthrough.py")
OUR_PACKAGES = ("weightkit",)
LIBRARY = ("weightkit.analysis", "weightkit.compress", "weightkit.reports")


def _imports(path):
    """``(module, name)`` for every import of our packages in the file (``import x.y`` gives ``("x.y", None)``)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OUR_PACKAGES:
            found.extend((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((alias.name, None) for alias in node.names if alias.name.split(".")[0] in OUR_PACKAGES)
    return found


def test_walkthrough_imports_only_package_level_names():
    imports = _imports(WALKTHROUGH)
    assert len(imports) >= 15  # the parse found the walkthrough's imports
    # From the packages themselves (not weightkit.analysis.data.datasets, weightkit.compress.quantize, weightkit.demo), names
    # in their __all__.
    assert sorted({module for module, _ in imports}) == sorted(LIBRARY)
    missing = [f"{module}.{name}" for module, name in imports
               if name not in getattr(importlib.import_module(module), "__all__", ())]
    assert missing == []


@pytest.fixture(scope="module")
def walkthrough():
    spec = importlib.util.spec_from_file_location("walkthrough", WALKTHROUGH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_walkthrough_runs_the_journey(walkthrough, tmp_path):
    lines = []
    out = walkthrough.main(str(tmp_path / "out"), epochs=8, finetune_epochs=2, modes=("float32", "int8"),
                           say=lines.append)
    analysis = out["analysis"]
    assert [layer.name for layer in analysis.layers] == ["hidden1", "hidden2", "classes"]
    assert lines[0].startswith("hidden1: 256 neurons, mean |r| ")
    # The hand-made groups of hidden2 are those analyze_model found.
    assert sorted(map(sorted, out["groups"])) == sorted(map(sorted, analysis.layer("hidden2").groups))
    assert os.path.getsize(out["heatmap"]) > 10_000
    # The monitor logged every epoch, and started from the loaded model's redundancy (of its kernel rows: the
    # regularizer's view, without the bias that analyze's rows carry by default).
    from weightkit.analysis import analyze

    kernel_rows = analyze(out["path"], layers=["hidden2"], include_bias=False).layer("hidden2")
    assert len(out["history"]["redundancy/hidden2/mean_abs_r"]) == 2
    assert out["initial"]["redundancy/hidden2/mean_abs_r"] == pytest.approx(kernel_rows.pearson_mean_abs_offdiag,
                                                                           abs=1e-4)
    merge = out["merge"]
    assert merge.params_after < 0.5 * merge.params_before
    modes = {row.mode: row for row in out["quantization"].modes}
    assert set(modes) == {"float32", "int8"} and all(row.ok for row in modes.values())
    assert modes["int8"].bytes < 0.5 * modes["float32"].bytes
    assert out["tflite_accuracy"] > 0.8
    assert np.isfinite(out["tflite_accuracy"])
    assert os.path.getsize(out["tflite"]) == modes[out["quantization"].exported.mode].bytes
