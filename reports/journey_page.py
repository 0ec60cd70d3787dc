"""The summary page of a journey (``weightkit demo``): one table per model, a size-versus-accuracy plot.

Renders :class:`weightkit.demo.journey.Journey` results that were already measured; nothing is
recomputed here. The page is one self-contained HTML5 document (inline CSS, no scripts, no
network) that links each stage's model file, report and JSON by relative paths.
"""

import json
import os
from datetime import datetime, timezone

import weightkit
from weightkit.analysis.files.io import atomic_write_json, atomic_write_text
from weightkit.reports.canvas import save_figure
from weightkit.reports.html import _CSS, ImageRef, _e, _image

__all__ = ["summary_figure", "render_summary_page", "write_summary", "STAGE_COLUMNS"]

#: The columns of each model's table, in order.
STAGE_COLUMNS = ("stage", "made from", "params", "file size", "accuracy", "agreement with original", "mean |r|",
                 "redundant groups", "removable neurons", "time", "files")

_EXTRA_CSS = """
.journey th { white-space: normal; vertical-align: bottom; }
.journey td.stage { font-weight: 600; }
.journey tr.tflite td { background: #f7f9fc; }
.journey tr.chosen td.stage::after { content: " ★"; color: var(--warn); }
.journey td.files a { margin-right: 8px; }
.better { color: #1d6b32; }
.worse { color: var(--warn); }
.stages { font-size: 14px; color: var(--muted); margin: 6px 0 0; padding-left: 20px; }
"""


def _kib(value):
    if value is None:
        return "—"
    return f"{value / 1024:,.1f} KiB"


def _share(value, digits=1):
    return "—" if value is None else f"{100.0 * value:.{digits}f}%"


def _delta_points(value, reference):
    if value is None or reference is None:
        return ""
    delta = 100.0 * (value - reference)
    if abs(delta) < 0.05:
        return ""
    klass = "better" if delta > 0 else "worse"
    return f' <span class="{klass}">({delta:+.1f})</span>'


def _place_labels(axes, points, *, char_width=5.2, height=11.0, join=7.0):
    """Annotate points so that labels overlap neither each other nor other points.

    Points closer than ``join`` pixels share one label (``a = b``). Each label takes the first
    of a few offsets (right above, right below, left above, left below, further out) whose box
    is free, in display pixels; the axes' limits must be final.

    Parameters
    ----------
    axes : matplotlib Axes
    points : list of (x, y, text)
    """
    transform = axes.transData.transform
    spots = []  # [(px, py, [texts], (x, y))]
    for x, y, text in points:
        px, py = transform((x, y))
        for spot in spots:
            if abs(spot[0] - px) < join and abs(spot[1] - py) < join:
                spot[2].append(text)
                break
        else:
            spots.append((px, py, [text], (x, y)))
    taken = [(px - 5, py - 5, px + 5, py + 5) for px, py, _, _ in spots]
    offsets = [(6, 5), (6, -15), (-6, 5), (-6, -15), (6, 16), (6, -26), (-6, 16), (-6, -26)]
    for px, py, texts, (x, y) in sorted(spots, key=lambda spot: spot[0]):
        label = " = ".join(texts)
        width = char_width * len(label)
        for dx, dy in offsets:
            left = px + dx if dx > 0 else px + dx - width
            box = (left, py + dy, left + width, py + dy + height)
            if not any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3] for t in taken):
                break
        else:
            dx, dy = offsets[0]
            left = px + dx
            box = (left, py + dy, left + width, py + dy + height)
        taken.append(box)
        axes.annotate(label, (x, y), textcoords="offset points", xytext=(dx * 0.72, dy * 0.72), fontsize=8,
                      ha="left" if dx > 0 else "right", va="bottom")


def summary_figure(journeys):
    """File size against held-out accuracy, one panel per model, one point per stage.

    Parameters
    ----------
    journeys : list of weightkit.demo.journey.Journey

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    count = max(len(journeys), 1)
    figure = Figure(figsize=(6.2 * count, 4.6), dpi=100)
    panels = figure.subplots(1, count, squeeze=False)[0]
    colors = {"keras": "tab:blue", "tflite": "tab:orange"}
    for axes, journey in zip(panels, journeys):
        stages = [s for s in journey.stages if s.bytes and s.accuracy is not None]
        original = journey.stages[0]
        for stage in stages:
            chosen = stage.key == journey.quantized_from
            axes.scatter(stage.bytes / 1024, 100 * stage.accuracy, s=90 if chosen else 45,
                         marker="o" if stage.kind == "keras" else "s", color=colors[stage.kind], zorder=3,
                         edgecolor="black" if chosen else "none")
        axes.axhline(100 * original.accuracy, color="gray", linestyle="--", linewidth=1)
        axes.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        axes.xaxis.set_major_formatter(plain)
        axes.xaxis.set_minor_formatter(plain)
        axes.tick_params(axis="x", which="minor", labelsize=7)
        axes.margins(x=0.25, y=0.25)
        axes.set_xlabel("model file size (KiB, log scale)")
        axes.set_ylabel(f"held-out accuracy (%, {journey.test_samples} samples)")
        axes.set_title(f"{journey.model}: Keras stages (circles), TFLite modes (squares)", fontsize=10)
        axes.grid(True, alpha=0.3)
    figure.tight_layout()
    for axes, journey in zip(panels, journeys):  # limits and layout are final: place the labels
        axes.autoscale_view()
        axes.set_xlim(axes.get_xlim())
        axes.set_ylim(axes.get_ylim())
        _place_labels(axes, [(s.bytes / 1024, 100 * s.accuracy, s.key) for s in journey.stages
                             if s.bytes and s.accuracy is not None])
    return figure


def _files(stage):
    links = []
    if stage.path:
        links.append(f'<a href="{_e(stage.path)}">{"model" if stage.kind == "keras" else "tflite"}</a>')
    for label in ("report", "json", "plot"):
        if label in stage.files:
            links.append(f'<a href="{_e(stage.files[label])}">{label}</a>')
    return " ".join(links)


def _model_table(journey):
    original = journey.stages[0]
    head = "".join(f'<th class="text">{_e(h)}</th>' if h in ("stage", "made from", "files") else f"<th>{_e(h)}</th>"
                   for h in STAGE_COLUMNS)
    body = []
    for stage in journey.stages:
        klass = [stage.kind] + (["chosen"] if stage.key == journey.quantized_from else [])
        params = "—" if stage.params is None else f"{stage.params:,}"
        if stage.params is not None and stage.key != "original" and stage.kind == "keras":
            params += f' <span class="none">({stage.params / original.params - 1:+.0%})</span>'
        mean_r = "—" if stage.mean_abs_r is None else f"{stage.mean_abs_r:.3f}"
        groups = "—" if stage.groups is None else f"{stage.groups:,}"
        removable = "—" if stage.removable is None else f"{stage.removable:,}"
        cells = [f'<td class="text stage" title="{_e(stage.title)}">{_e(stage.key)}</td>',
                 f'<td class="text">{_e(stage.source or "")}</td>', f"<td>{params}</td>", f"<td>{_kib(stage.bytes)}</td>",
                 f"<td>{_share(stage.accuracy)}{_delta_points(stage.accuracy, original.accuracy)}</td>",
                 f"<td>{_share(stage.agreement)}</td>", f"<td>{mean_r}</td>", f"<td>{groups}</td>",
                 f"<td>{removable}</td>", f"<td>{stage.seconds:.1f} s</td>",
                 f'<td class="text files">{_files(stage)}</td>']
        body.append(f'<tr class="{" ".join(klass)}">{"".join(cells)}</tr>')
    return (f'<div class="wide"><table class="journey"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _verdict(journey):
    original = journey.stages[0]
    small = journey.stage(journey.quantized_from)
    tflite = [s for s in journey.stages if s.kind == "tflite" and s.bytes]
    if small.params < original.params:
        text = (f"<strong>{_e(journey.model)}</strong>: {original.params:,} → {small.params:,} parameters "
                f"(<code>{_e(small.key)}</code>, {small.params / original.params - 1:+.0%}) at "
                f"{_share(small.accuracy)} held-out accuracy (original {_share(original.accuracy)}, "
                f"agreement {_share(small.agreement)})")
    else:
        text = (f"<strong>{_e(journey.model)}</strong>: no merged stage stayed within "
                f"{journey.settings['max_drop']:g} accuracy point(s) of the original's "
                f"{_share(original.accuracy)} with fewer parameters, so the original was quantized")
    if tflite:
        smallest = min(tflite, key=lambda s: s.bytes)
        text += (f"; as <code>{_e(smallest.key)}</code> TFLite {_kib(smallest.bytes)} instead of "
                 f"{_kib(original.bytes)}, {_share(smallest.accuracy)} accurate, agreeing with the original on "
                 f"{_share(smallest.agreement)} of the held-out digits")
    return f"<li>{text}.</li>"


def _model_section(journey):
    settings = journey.settings
    links = (f'<a href="{_e(journey.stages[0].files["report"])}">report of the original</a>'
             if "report" in journey.stages[0].files else "")
    notes = "".join(f"<li>{_e(text)}</li>" for text in journey.notes)
    anchor = "model-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in journey.model)
    return (f'<section id="{_e(anchor)}"><h2>{_e(journey.model)}</h2>'
            f'<p class="layer-stats">retrained {settings["retrain_epochs"]} epochs at strength '
            f'{settings["strength"]:g}; ratio merges remove {settings["ratio"]:g} of each layer; ★ = the stage '
            f'quantized: <code>weightkit shrink</code>\'s model, the smallest found within {settings["max_drop"]:g} '
            f'accuracy point(s) of the original (its frontier.png shows every stage). '
            f"{links}</p>{_model_table(journey)}"
            + (f'<ul class="stages">{notes}</ul>' if notes else "") + "</section>")


def render_summary_page(journeys, *, plot=None, created="", version="", meta=None):
    """The summary page as a string.

    Parameters
    ----------
    journeys : list of weightkit.demo.journey.Journey
    plot : ImageRef, default=None
        The size-versus-accuracy figure.
    created, version : str
    meta : dict, default=None
        More ``label -> text`` lines for the header (data, time taken).

    Returns
    -------
    str
        A complete HTML5 document.
    """
    rows = [("created", created), ("tool", f"weightkit {version}")] + list((meta or {}).items())
    meta_html = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    verdicts = "".join(_verdict(journey) for journey in journeys)
    toc = " · ".join(f'<a href="#model-{_e(j.model)}">{_e(j.model)}</a>' for j in journeys)
    plot_html = (f'<section id="plot"><h2>File size against accuracy</h2>{_image(plot)}</section>'
                 if plot is not None else "")
    stages_help = (
        "<li><code>original</code>: the trained model; <code>merged</code>: each of its redundant groups "
        "(r ≥ 0.9 between weight rows with their bias, as <code>weightkit merge</code> compares them) folded into "
        "one neuron; <code>merged-ratio</code>: a fixed share of each layer's neurons merged away, most similar "
        "pairs first.</li>"
        "<li><code>retrained</code>: fine-tuned with the decorrelation regularizer (lower mean |r|); "
        "<code>retrained-merged-ratio</code>: then merged at the same ratio.</li>"
        "<li>float32, dynamic, float16, int8: the ★ stage converted to TFLite and run in the LiteRT interpreter. "
        "Their mean |r| and groups are not measured (—): the weights are those of the ★ stage, rounded.</li>"
        "<li><em>Agreement with original</em>: share of held-out samples on which a stage predicts the same "
        "class as the original; accuracy deltas from the original are in points.</li>")
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>weightkit demo: {_e(', '.join(j.model for j in journeys))}</title>"
            f"<style>{_CSS}{_EXTRA_CSS}</style></head><body><main>"
            "<header><h1>weightkit demo: analyze → retrain → merge → quantize</h1>"
            f'<ul class="verdict">{verdicts}</ul><dl class="meta">{meta_html}</dl>'
            f'<ul class="howto">{stages_help}</ul>'
            f'<p class="toplinks">{toc} · <a href="#plot">Plot</a> · '
            '<a href="summary.json">summary.json</a></p></header>'
            + "".join(_model_section(journey) for journey in journeys) + plot_html
            + '<footer>Every number on this page was measured in this run; <a href="summary.json">summary.json</a> '
              "holds them all.</footer></main></body></html>\n")


def write_summary(journeys, folder, *, created=None, version=None, meta=None, extra=None):
    """Write ``index.html``, ``summary.png`` and ``summary.json`` for finished journeys.

    Parameters
    ----------
    journeys : list of weightkit.demo.journey.Journey
    folder : str
        An existing folder (the stages' paths are relative to it).
    created : str, default=None
        Now (UTC) when None.
    version : str, default=None
        ``weightkit.__version__`` when None.
    meta : dict, default=None
        Extra header lines of the page.
    extra : dict, default=None
        Extra top-level entries of ``summary.json`` (timings, settings).

    Returns
    -------
    dict
        The ``summary.json`` document.
    """
    created = created or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    version = version or weightkit.__version__
    width, height = save_figure(summary_figure(journeys), os.path.join(folder, "summary.png"))
    plot = ImageRef("summary.png", "File size against held-out accuracy for every stage of each model", width,
                    height, "Each point is one stage; dashed: the original's accuracy; outlined: the stage quantized.")
    document = {"created": created, "version": version, **(extra or {}),
                "models": [journey.to_dict() for journey in journeys]}
    atomic_write_json(os.path.join(folder, "summary.json"), json.loads(json.dumps(document, allow_nan=False)))
    atomic_write_text(os.path.join(folder, "index.html"),
                      render_summary_page(journeys, plot=plot, created=created, version=version, meta=meta))
    return document
