"""`weightkit report`: the report folder, its HTML page and its analysis.json."""

import json
import os
import re
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest

from weightkit.analysis import LayerAnalysis, ModelAnalysis, SkippedLayer
from weightkit._common import run_cli
from weightkit.cli import cli

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PageChecker(HTMLParser):
    """Collects ids and links, and checks that every non-void tag is closed in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.ids, self.links, self.images = [], [], [], [], []
        self.doctype, self.text = None, []

    def handle_decl(self, decl):
        self.doctype = decl

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        for name in ("href", "src"):
            if name in attrs:
                self.links.append(attrs[name])
        if tag == "img":
            self.images.append(attrs)
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.errors.append(f"self-closed <{tag}/> at {self.getpos()}")
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            self.errors.append(f"end tag for void <{tag}> at {self.getpos()}")
        elif not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_page(text):
    checker = PageChecker()
    checker.feed(text)
    checker.close()
    return checker


def build_planted_model(keras, seed=0):
    """A small untrained conv net whose Dense layer "planted" has near-copies of some neurons.

    Groups of "planted" (Pearson r >= 0.9): [0, 4], [1, 6, 7], [2, 11]; the BatchNormalization
    layer is listed as skipped.
    """
    import numpy as np

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(6, 3, name="conv"),
                              keras.layers.BatchNormalization(name="norm"), keras.layers.Flatten(name="flat"),
                              keras.layers.Dense(12, name="planted"), keras.layers.Dense(4, name="out")],
                             name="planted_net")
    kernel, bias = model.get_layer("planted").get_weights()
    rng = np.random.default_rng(seed)
    for source, copy in ((0, 4), (1, 6), (1, 7), (2, 11)):
        kernel[:, copy] = kernel[:, source] + 0.02 * np.std(kernel) * rng.normal(size=kernel.shape[0])
    model.get_layer("planted").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def model_path(keras, tmp_path_factory):
    path = tmp_path_factory.mktemp("planted") / "planted.keras"
    build_planted_model(keras).save(path)
    return str(path)


@pytest.fixture(scope="module")
def report_dir(model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "planted-report"
    assert run_cli(cli, ["report", model_path, "-o", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def page(report_dir):
    return (report_dir / "index.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def document(report_dir):
    return json.loads((report_dir / "analysis.json").read_text())


def test_report_folder_holds_page_json_and_four_figures_per_layer(report_dir, document):
    figures = sorted(os.listdir(report_dir / "figures"))
    assert sorted(os.listdir(report_dir)) == [".weightkit-output", "analysis.json", "figures", "index.html"]
    assert [layer["name"] for layer in document["layers"]] == ["conv", "planted", "out"]
    assert [(s["name"], s["type"]) for s in document["skipped"]] == [("norm", "BatchNormalization")]
    assert document["layers"][1]["groups"] == [[0, 4], [1, 6, 7], [2, 11]]
    assert len(figures) == 4 * len(document["layers"]) + 1 + 1  # the convolution's filters too
    for kind in ("pearson", "mad", "rows", "histogram"):
        assert f"002-planted-{kind}.png" in figures
    assert "001-conv-filters.png" in figures
    assert all((report_dir / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in figures)


def test_page_is_balanced_html5_with_unique_ids(page):
    checker = check_page(page)
    assert checker.doctype == "DOCTYPE html"
    assert checker.errors == []
    assert checker.stack == []
    assert len(checker.ids) == len(set(checker.ids))
    assert re.search(r'<html lang="en"><head><meta charset="utf-8">', page)
    assert "<title>weightkit report: planted_net</title>" in page


def test_page_links_only_to_files_in_the_folder_and_its_own_anchors(report_dir, page):
    checker = check_page(page)
    figures = set(os.listdir(report_dir / "figures"))
    linked = set()
    for link in checker.links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc, f"external link {link}"
        if link.startswith("#"):
            assert link[1:] in checker.ids, f"dangling anchor {link}"
            continue
        path = report_dir / unquote(parts.path)
        assert path.is_file(), f"missing {link}"
        assert path.resolve().is_relative_to(report_dir.resolve())
        if link.startswith("figures/"):
            linked.add(link[len("figures/"):])
    assert linked == figures  # every figure file is on the page
    assert "url(" not in page and "<script" not in page and "@import" not in page
    for image in checker.images:
        assert image["alt"] and int(image["width"]) > 0 and int(image["height"]) > 0


def test_analysis_json_is_the_analyze_json_document(model_path, document, tmp_path, capsys):
    json_path = tmp_path / "analysis.json"
    assert run_cli(cli, ["analyze", model_path, "--json", str(json_path), "--quiet"]) == 0
    capsys.readouterr()
    assert json.loads(json_path.read_text()) == document


def test_page_shows_metadata_table_and_every_group(page, document, model_path):
    import weightkit
    text = " ".join("".join(check_page(page).text).split())
    assert f"weightkit {weightkit.__version__}" in text
    assert model_path in text and "every pair has Pearson r ≥ 0.9" in text
    assert re.search(r"created\d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    for layer in document["layers"]:
        assert f'<a href="#layer-{layer["name"]}">{layer["name"]}</a>' in page
        assert f'<section id="layer-{layer["name"]}"><h2>{layer["name"]}</h2>' in page
        for group in layer["groups"]:
            assert f"<span>[{', '.join(map(str, group))}]</span>" in page
    reason = document["skipped"][0]["reason"]
    assert f'<tr><td class="text">norm</td><td class="text">BatchNormalization</td><td class="text">{reason}</td>' in page
    totals = document["totals"]
    assert f"{totals['removable']:,} of " in text
    assert f"remove {totals['removable_params']:,} of their {totals['analyzed_params']:,} own parameters" in text


def test_a_folder_weightkit_did_not_write_is_never_replaced_not_even_with_force(model_path, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    for extra in ([], ["--force"]):
        assert run_cli(cli, ["report", model_path, "-o", str(out), "--layers", "out", "--quiet", *extra]) == 2
        assert capsys.readouterr().err == f"weightkit report: error: {out}: folder is not empty and weightkit did not write it (no .weightkit-output in it), so it is never replaced, not even with --force; choose another output folder or empty it yourself.\n"
        assert os.listdir(out) == ["old.txt"] and (out / "old.txt").read_text() == "keep me"


def test_a_report_folder_is_refused_without_force_and_replaced_with_it(model_path, tmp_path, capsys):
    out = tmp_path / "report"
    assert run_cli(cli, ["report", model_path, "-o", str(out), "--layers", "out", "--quiet"]) == 0
    assert run_cli(cli, ["report", model_path, "-o", str(out), "--layers", "out", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"weightkit report: error: {out}: folder is not empty; pass --force to replace it "
                            "or choose another path.\n")
    assert run_cli(cli, ["report", model_path, "-o", str(out), "--layers", "out", "--force", "--quiet"]) == 0
    assert sorted(os.listdir(out)) == [".weightkit-output", "analysis.json", "figures", "index.html"]
    assert capsys.readouterr().out.startswith(f"wrote {out}/index.html: 1 layer entries, 0 skipped, 5 figures")
    assert sorted(os.listdir(tmp_path)) == ["report"]  # no temporary folder left beside it


def test_a_failed_report_leaves_nothing_behind(model_path, tmp_path, capsys):
    out = tmp_path / "report"
    assert run_cli(cli, ["report", model_path, "-o", str(out), "--layers", "nope", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == ("weightkit report: error: --layers: no analyzable layer named 'nope'; available: conv, out, "
                   "planted.\n")
    assert os.listdir(tmp_path) == []


def test_mad_metric_report_marks_each_layers_cutoff(model_path, tmp_path, capsys):
    out = tmp_path / "mad"
    assert run_cli(cli, ["report", model_path, "-o", str(out), "--metric", "mad", "--layers", "planted,norm",
                         "--threshold", "0.3", "--quiet"]) == 0
    capsys.readouterr()
    document = json.loads((out / "analysis.json").read_text())
    page = (out / "index.html").read_text()
    (layer,) = document["layers"]
    assert [s["name"] for s in document["skipped"]] == ["norm"]
    assert document["metric"] == "mad" and document["threshold"] == 0.3
    assert "every pair has MAD ≤ 0.3 × the layer&#x27;s median MAD" in page
    assert "<th>MAD cutoff</th>" in page and f"<td>{layer['threshold_value']:.4g}</td>" in page
    assert check_page(page).errors == []


def test_write_report_returns_the_result_without_matrices(keras, tmp_path):
    from weightkit.reports import write_report

    seen = []
    result = write_report(build_planted_model(keras), tmp_path / "r", layers=["out"],
                          progress=lambda *a: seen.append(a))
    assert [layer.name for layer in result.layers] == ["out"]
    assert all(layer.matrices is None for layer in result.layers)
    assert seen[-1] == (1, 1, "")


def test_every_piece_of_model_text_is_escaped():
    from weightkit.reports.html import ImageRef, render_page

    evil = '<script>alert("x")</script>&'
    layer = LayerAnalysis(name=evil, layer_name=evil, type="Dense<b>", neurons=3, fan_in=2, params=9, macs=6,
                          groups=[[0, 2]], removable=1, pearson_mean_abs_offdiag=0.5, pearson_max_offdiag=0.99,
                          mad_median_offdiag=0.1, mad_min_offdiag=0.01, threshold_value=0.1)
    result = ModelAnalysis(model=evil, path=evil, metric="pearson", threshold=0.9, include_bias=False,
                           layers=[layer], skipped=[SkippedLayer(evil, "Norm<i>", "reason <u>&")], total_params=9,
                           notes=[evil])
    page = render_page(result, images={evil: [ImageRef("figures/a&b.png", evil, 10, 10, evil)]},
                       anchors={evil: "layer-x"}, created="<now>", version="<v>")
    assert "<script" not in page and "<b>" not in page and "<i>" not in page and "<u>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert 'src="figures/a&amp;b.png"' in page
    checker = check_page(page)
    assert checker.errors == [] and checker.stack == []
