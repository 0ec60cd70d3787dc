"""Rendering of activation results: console tables, report figures in the weight order, HTML snippets."""

import io
import os

import numpy as np
import pytest

from weightkit.analysis import analyze
from weightkit.analysis.activations.analyze import analyze_activations, attach_activations
from weightkit.analysis.activations.collect import SKIP_SEPARABLE_DEPTHWISE
from weightkit.analysis.model_analysis import analyze_rows, collect_entries
from weightkit.console.activations import format_indices, print_activations, print_data_merge_report
from weightkit.reports.activation_html import activation_section_html
from weightkit.reports.activation_report import ActivationFigures, interleave
from weightkit.reports.html import ImageRef


def _console():
    from rich.console import Console

    buffer = io.StringIO()
    return Console(file=buffer, width=200, highlight=False, color_system=None), buffer


@pytest.fixture(scope="module")
def probed(keras):
    """A Dense model with dead neuron 3 and functional twins 0 and 1, and its inputs."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="relu", name="hidden")
    outputs = keras.layers.Dense(3, name="out")(hidden(inputs))
    model = keras.Model(inputs, outputs, name="probed")
    kernel = rng.normal(size=(6, 5)).astype(np.float32)
    kernel[:, :2] = 0.0
    kernel[0, 0] = kernel[1, 1] = 2.0
    bias = np.full(5, 0.5, dtype=np.float32)
    bias[3] = -100.0
    hidden.set_weights([kernel, bias])
    x = rng.random((200, 6)).astype(np.float32)
    x[:, 1] = x[:, 0]
    return model, x


def test_console_lists_dead_neurons_and_activation_groups(probed):
    model, x = probed
    analysis = attach_activations(analyze(model), analyze_activations(model, x))
    console, buffer = _console()
    print_activations(analysis, console)
    text = buffer.getvalue()
    assert "probed: what neurons do on 200 data samples" in text
    assert "hidden: dead on the sample (constant): 3" in text
    assert "hidden: 1 activation group(s): [0, 1]" in text


def test_format_indices_cuts_long_lists():
    assert format_indices(range(5)) == "0, 1, 2, 3, 4"
    assert format_indices(range(20), limit=3) == "0, 1, 2 … and 17 more"


def test_report_figures_use_the_weight_order_and_fill_the_json(probed, tmp_path):
    model, x = probed
    figures = ActivationFigures(model, x, samples=150, source="test data")
    entry = collect_entries(model)[0][0]
    layer = analyze_rows(entry, keep_matrices=True)
    images = figures.draw(layer, str(tmp_path), "001-hidden", cap=512)
    assert [os.path.basename(i.path) for i in images] == ["001-hidden-act-pearson.png", "001-hidden-act-mad.png"]
    assert all((tmp_path / os.path.basename(i.path)).stat().st_size > 0 and i.width > 0 for i in images)
    assert "150 samples of test data" in images[0].caption
    analysis = analyze(model)
    figures.attach(analysis)
    reference = attach_activations(analyze(model), analyze_activations(model, x, samples=150))
    assert analysis.to_dict()["layers"][0] == reference.to_dict()["layers"][0]  # same as analyze --data
    assert figures.result.layers[0].matrices is None  # matrices dropped after drawing


def test_interleave_puts_each_view_beside_its_counterpart():
    weights = [ImageRef(name, name, 1, 1) for name in ("pearson", "mad", "rows", "histogram")]
    activations = [ImageRef(name, name, 1, 1) for name in ("act-pearson", "act-mad")]
    assert [i.path for i in interleave(weights, activations)] == ["pearson", "act-pearson", "mad", "act-mad",
                                                                   "rows", "histogram"]
    assert interleave(weights, []) == weights


def test_section_html_lists_dead_neurons_groups_and_skips(probed, keras):
    model, x = probed
    analysis = attach_activations(analyze(model), analyze_activations(model, x))
    snippet = activation_section_html(analysis.layer("hidden"))
    assert "<h3>1 dead neuron(s) (constant on 200 samples)</h3><p class=\"groups\">3</p>" in snippet
    assert "<span>[0, 1]</span>" in snippet
    assert activation_section_html(analyze(model).layer("hidden")) == ""
    inputs = keras.Input((8, 8, 3))
    sep = keras.Model(inputs, keras.layers.SeparableConv2D(2, 3, name="sep")(inputs))
    skipped = attach_activations(analyze(sep), analyze_activations(sep, np.zeros((4, 8, 8, 3))))
    assert activation_section_html(skipped.layer("sep/depthwise")) == (
        f'<p class="groups none">Activations not collected: {SKIP_SEPARABLE_DEPTHWISE}.</p>')


def test_data_merge_report_prints_r2_and_evaluation(trained_mlp, digits):
    from weightkit.compress.merge.by_data import merge_by_data

    model, _ = trained_mlp
    _, report = merge_by_data(model, digits.x_train, ratio=0.25, samples=300)
    report.evaluation = {"samples": 10, "data": "d", "accuracy_before": 0.9, "accuracy_after": 0.8,
                         "agreement": 0.85, "max_abs_output_difference": 0.5}
    console, buffer = _console()
    print_data_merge_report(report, console)
    text = buffer.getvalue()
    assert "merged by data (ratio 0.25, 300 calibration inputs)" in text
    assert "hidden1: removed neuron (R²): " in text
    assert "on 10 held-out samples of d: accuracy 0.9000 → 0.8000, agreement 0.8500," in text
    assert "left alone: classes (Dense): its output is (on the way to) a model output" in text


def test_report_with_data_shows_both_views_and_matches_analyze(capsys, tmp_path, keras, probed):
    import json
    import re

    from weightkit._common import run_cli
    from weightkit.cli import cli

    model, x = probed
    path, data = tmp_path / "probed.keras", tmp_path / "data.npz"
    model.save(path)
    np.savez(data, x_train=x, y_train=np.zeros(len(x), dtype=np.int64), x_test=x[:20],
             y_test=np.zeros(20, dtype=np.int64))
    assert run_cli(cli, ["report", str(path), "-o", str(tmp_path / "rep"), "--data", str(data), "--samples", "100"]) == 0
    assert run_cli(cli, ["analyze", str(path), "--data", str(data), "--samples", "100", "--json",
                         str(tmp_path / "a.json")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "rep" / "analysis.json").read_text())
    assert report == json.loads((tmp_path / "a.json").read_text())
    page = (tmp_path / "rep" / "index.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', page)
    hidden = [os.path.basename(s) for s in sources if "hidden" in s]
    # Weight and activation views alternate, so each pair sits side by side in the two-column grid.
    assert hidden == ["001-hidden-pearson.png", "001-hidden-act-pearson.png", "001-hidden-mad.png",
                      "001-hidden-act-mad.png", "001-hidden-rows.png", "001-hidden-histogram.png"]
    assert all((tmp_path / "rep" / s).is_file() for s in sources)
    assert "<h3>1 dead neuron(s) (constant on 100 samples)</h3>" in page
