"""``weightkit demo``: the whole journey on the built-in MLP, reduced (few epochs, two modes), end to end."""

import json
import os
import shutil

import numpy as np
import pytest
from browser import CHROMIUM, visit

from weightkit._common import run_cli
from weightkit.cli import cli

KERAS_KEYS = ["original", "merged", "merged-ratio", "retrained", "retrained-merged-ratio", "shrunk"]
REDUCED = ["--models", "mlp", "--epochs", "4", "--retrain-epochs", "1", "--modes", "float32,int8", "--fast"]
#: Set to a folder to keep a copy of the screenshot for a person to look at; otherwise it stays in
#: the test's temporary folder (pytest keeps the last three runs' folders).
SCREENSHOT_DIR = os.environ.get("WEIGHTKIT_SCREENSHOT_DIR")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    status = run_cli(cli, ["demo", "-o", str(out), *REDUCED])
    return status, out


def _summary(out):
    with open(out / "summary.json", encoding="utf-8") as handle:
        return json.load(handle)


def test_demo_summary_has_every_stage(demo_run):
    status, out = demo_run
    assert status == 0
    summary = _summary(out)
    assert summary["settings"]["epochs"] == {"digits_mlp": 4}
    assert summary["seconds"] > 0 and summary["cpu_seconds"] > 0
    (journey,) = summary["models"]
    assert journey["model"] == "digits_mlp" and journey["test_samples"] == 359
    assert [stage["key"] for stage in journey["stages"]] == KERAS_KEYS + ["float32", "int8"]
    stages = {stage["key"]: stage for stage in journey["stages"]}
    assert stages["original"]["agreement"] == 1.0
    assert journey["quantized_from"] == "shrunk"  # the headline: weightkit shrink's model
    for stage in journey["stages"]:
        assert os.path.getsize(out / stage["path"]) == stage["bytes"], stage["key"]
        assert 0.0 <= stage["accuracy"] <= 1.0 and 0.0 <= stage["agreement"] <= 1.0
        for path in stage["files"].values():
            assert (out / path).is_file(), path
        if stage["kind"] == "keras":
            if stage["key"] != "shrunk":  # shrunk's page is its frontier
                assert stage["files"]["report"] == f"{stage['folder']}/report/index.html"
            assert 0.0 < stage["mean_abs_r"] < 1.0 and stage["groups"] >= 0
        else:
            assert stage["source"] == journey["quantized_from"] and stage["mean_abs_r"] is None
            assert stage["params"] == stages[journey["quantized_from"]]["params"]
    # Ratio 0.5 halves the hidden layers: 64-128-128-10 has 26,122 parameters.
    assert stages["merged-ratio"]["params"] == stages["retrained-merged-ratio"]["params"] == 26_122
    assert stages["original"]["params"] == stages["retrained"]["params"] == 85_002
    assert stages["int8"]["bytes"] < 0.5 * stages["float32"]["bytes"]
    # Each stage's report is the analysis of that stage's model.
    with open(out / "digits_mlp" / "merged-ratio" / "report" / "analysis.json", encoding="utf-8") as handle:
        analysis = json.load(handle)
    assert [layer["neurons"] for layer in analysis["layers"]] == [128, 128, 10]
    with open(out / "digits_mlp" / "merged-ratio" / "merge.json", encoding="utf-8") as handle:
        merge = json.load(handle)
    assert merge["input"] == "original" and merge["ratio"] == 0.5
    assert merge["evaluation"]["samples"] == 359
    assert merge["evaluation"]["agreement"] == stages["merged-ratio"]["agreement"]  # its source is the original
    assert (out / "digits_mlp" / "retrained" / "retrain.png").is_file()
    # The shrink stage: fewer parameters than the original, its frontier carrying the other stages as points.
    shrunk = stages["shrunk"]
    assert shrunk["params"] < stages["original"]["params"]
    assert set(shrunk["files"]) == {"tflite", "json", "plot", "frontier_json"}  # plot: frontier.png
    with open(out / shrunk["files"]["frontier_json"], encoding="utf-8") as handle:
        frontier = json.load(handle)
    keys = [candidate["key"] for candidate in frontier["candidates"]]
    assert keys[:2] == ["original", "original:float32"]
    assert [key for key in keys if key.startswith("demo:")] == [f"demo:{key}" for key in KERAS_KEYS[1:-1]]
    assert sum(candidate["chosen"] for candidate in frontier["candidates"]) == 1
    assert not [name for name in os.listdir(out.parent) if name.startswith(".")]  # no temporary left


def test_demo_refuses_a_non_empty_folder_without_force(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run_cli(cli, ["demo", "-o", str(out), *REDUCED]) == 2
    assert capsys.readouterr().err == f"weightkit demo: error: {out}: folder is not empty and weightkit did not write it (no .weightkit-output in it), so it is never replaced, not even with --force; choose another output folder or empty it yourself.\n"
    assert os.listdir(out) == ["keep.txt"]


def test_demo_rejects_an_unknown_example(tmp_path, capsys):
    assert run_cli(cli, ["demo", "-o", str(tmp_path / "x"), "--models", "mlp,vgg"]) == 2
    assert capsys.readouterr().err == ("weightkit demo: error: --models mlp,vgg: unknown example vgg; expected some "
                                       "of mlp, cnn.\n")
    assert not (tmp_path / "x").exists()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (install Debian's `chromium`; .ci/run does)")
def test_demo_page_opens_offline_and_every_link_resolves(demo_run, tmp_path):
    status, out = demo_run
    assert status == 0
    screenshot = tmp_path / "summary.png"
    seen = visit(out / "index.html", screenshot=screenshot, full_page=True, evaluate={
        "links": "Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))",
        "rows": "document.querySelectorAll('table.journey tbody tr').length"})
    assert seen.title == "weightkit demo: digits_mlp"
    assert seen.heading == "weightkit demo: analyze → retrain → merge → quantize"
    assert seen.values["rows"] == len(KERAS_KEYS) + 2
    assert [src for src, *_ in seen.images] == ["summary.png"]
    assert seen.broken_images == [] and seen.remote_requests == []
    assert seen.failures == [] and seen.errors == []
    files = [link for link in seen.values["links"] if not link.startswith("#")]
    assert len(files) >= 3 * len(KERAS_KEYS)  # model, report and more per Keras stage
    assert [link for link in files if not (out / link).is_file()] == []
    assert all(link[1:] in {"model-digits_mlp", "plot"} for link in seen.values["links"] if link.startswith("#"))
    assert screenshot.stat().st_size > 30_000
    if SCREENSHOT_DIR:
        shutil.copyfile(screenshot, os.path.join(SCREENSHOT_DIR, "demo_summary_screenshot.png"))


def _stage(key, params, accuracy, kind="keras"):
    from weightkit.demo.journey import Stage

    return Stage(key=key, title=key, kind=kind, source=None, folder="", params=params, accuracy=accuracy)


@pytest.mark.parametrize("max_drop, expected", [(0.0, "merged"), (1.0, "merged"), (2.0, "ratio"), (50.0, "tiny")])
def test_the_quantized_stage_is_the_smallest_within_the_drop(max_drop, expected):
    from weightkit.demo.journey import choose_quantize_source

    stages = [_stage("original", 100, 0.90), _stage("merged", 80, 0.90), _stage("retrained", 100, 0.95),
              _stage("ratio", 50, 0.885), _stage("tiny", 10, 0.50), _stage("int8", 5, 0.99, kind="tflite")]
    assert choose_quantize_source(stages, max_drop).key == expected


def test_the_original_is_quantized_when_nothing_smaller_keeps_its_accuracy():
    from weightkit.demo.journey import choose_quantize_source

    stages = [_stage("original", 100, 0.9), _stage("merged", 100, 0.9), _stage("ratio", 50, 0.5)]
    assert choose_quantize_source(stages, 1.0).key == "original"  # the earliest on a tie


def test_pooled_mean_abs_r_is_the_mean_over_all_within_layer_pairs(rng):
    from weightkit.analysis import analyze_rows
    from weightkit.analysis.results import ModelAnalysis
    from weightkit.analysis.rows import NeuronRows
    from weightkit.demo.journey import pooled_mean_abs_r

    layers, values = [], []
    for n in (3, 7, 12):
        rows = rng.normal(size=(n, 20)).astype("float32")
        layers.append(analyze_rows(NeuronRows(f"l{n}", f"l{n}", "Dense", rows, None, 0, 0)))
        r = np.corrcoef(rows)
        values.extend(np.abs(r[np.triu_indices(n, 1)]))
    result = ModelAnalysis("m", None, "pearson", 0.9, False, layers=layers)
    # Reference: the plain mean of |r| over the 3 + 21 + 66 pairs (float32 rows: 1e-6).
    assert pooled_mean_abs_r(result) == pytest.approx(np.mean(values), abs=1e-6)
    assert pooled_mean_abs_r(ModelAnalysis("m", None, "pearson", 0.9, False)) is None
