"""The report page: one self-contained HTML5 document (inline CSS, no scripts, no network).

:func:`render_page` turns an analysis result and the figure files already written for it into a
string. Every piece of text from the model (layer names, types, reasons, paths) is escaped.
"""

import html
import re
from dataclasses import dataclass

from weightkit.reports.activation_html import activation_section_html, states_section_html

__all__ = ["ImageRef", "render_page", "anchor_for", "describe_threshold"]

_MAX_GROUPS_LISTED = 300


@dataclass
class ImageRef:
    """A figure file as the page refers to it.

    Attributes
    ----------
    path : str
        Relative to the page, with forward slashes (``figures/003-dense-pearson.png``).
    alt : str
        What the figure shows, for screen readers and when images are off.
    width, height : int
        Size in pixels.
    caption : str
    """

    path: str
    alt: str
    width: int
    height: int
    caption: str = ""


def _e(value):
    return html.escape(str(value), quote=True)


def anchor_for(name, taken):
    """A unique HTML id for a layer name (``dense_1`` → ``layer-dense_1``); records it in ``taken``."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", str(name)).strip("-") or "layer"
    anchor, suffix = f"layer-{slug}", 2
    while anchor in taken:
        anchor, suffix = f"layer-{slug}-{suffix}", suffix + 1
    taken.add(anchor)
    return anchor


def describe_threshold(result):
    """The grouping rule in words: ``every pair r ≥ 0.9``."""
    if result.metric == "pearson":
        return f"every pair has Pearson r ≥ {result.threshold:g}"
    return f"every pair has MAD ≤ {result.threshold:g} × the layer's median MAD"


_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d8dce3; --soft: #f4f6f9; --accent: #1f5fa8; --warn: #a14a00; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); background: #fff; }
main { max-width: 1420px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-top: 8px; border-top: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 6px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em; }
a { color: var(--accent); }
.verdict { font-size: 18px; margin: 10px 0 14px; padding: 12px 16px; background: var(--soft);
           border-left: 5px solid var(--accent); }
.verdict strong { font-size: 20px; }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; color: var(--muted);
        font-size: 14px; }
.meta dt { font-weight: 600; color: var(--ink); }
.meta dd { margin: 0; overflow-wrap: anywhere; }
.howto { font-size: 14px; color: var(--muted); margin: 14px 0 0; padding-left: 20px; }
.toplinks { font-size: 14px; margin: 14px 0 0; }
table { border-collapse: collapse; font-size: 13.5px; margin: 6px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: var(--soft); position: sticky; top: 0; }
th.text, td.text { text-align: left; }
tbody tr:nth-child(even) { background: #fafbfc; }
tr.has-groups td.removable { font-weight: 700; color: var(--warn); }
tfoot td { font-weight: 700; border-top: 2px solid var(--ink); }
.wide { overflow-x: auto; }
.layer-stats { color: var(--muted); margin: 0 0 8px; font-size: 14px; }
.groups { margin: 6px 0 12px; padding: 8px 12px; background: var(--soft); font-size: 14px; max-height: 14em;
          overflow-y: auto; }
.groups span { display: inline-block; margin: 1px 10px 1px 0; white-space: nowrap; }
.none { color: var(--muted); }
.figures { display: grid; grid-template-columns: repeat(auto-fit, minmax(560px, 1fr)); gap: 14px 18px;
           align-items: start; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figure.wide-figure { grid-column: 1 / -1; }
figcaption { font-size: 13px; color: var(--muted); }
.back { font-size: 13px; }
footer { margin-top: 40px; font-size: 13px; color: var(--muted); }
"""


def _count(value):
    return f"{int(value):,}"


def _percent(part, whole):
    return f"{100.0 * part / whole:.1f}%" if whole else "0%"


def _image(image, *, wide=False):
    klass = ' class="wide-figure"' if wide else ""
    caption = f"<figcaption>{_e(image.caption)}</figcaption>" if image.caption else ""
    return (f'<figure{klass}><a href="{_e(image.path)}"><img src="{_e(image.path)}" alt="{_e(image.alt)}" '
            f'width="{int(image.width)}" height="{int(image.height)}"></a>{caption}</figure>')


def _header(result, *, created, version, source):
    document = result.to_dict()
    totals = document["totals"]
    neurons = sum(layer.neurons for layer in result.layers)
    analyzed_params = totals["analyzed_params"]
    if result.layers:
        verdict = (f"<strong>{_count(totals['removable'])}</strong> of {_count(neurons)} neurons in "
                   f"{len(result.layers)} analyzed layer entries are redundant ({_e(describe_threshold(result))}). "
                   f"Merging each group into one neuron would remove {_count(totals['removable_params'])} "
                   f"of their {_count(analyzed_params)} own parameters "
                   f"({_percent(totals['removable_params'], analyzed_params)}).")
    else:
        verdict = "No layer of this model could be analyzed; see the skipped layers below."
    rows = [("model", f"<code>{_e(result.model)}</code>"),
            ("file", f"<code>{_e(source or result.path or '(in memory)')}</code>"),
            ("created", _e(created)),
            ("tool", f"weightkit {_e(version)}"),
            ("metric", _e("Pearson r between weight rows" if result.metric == "pearson"
                          else "MAD (mean absolute difference) between weight rows")),
            ("threshold", _e(describe_threshold(result)) + (
                "" if result.metric == "pearson" else " (each layer's cutoff is in its section)")),
            ("bias", "appended to each row" if result.include_bias else "not included"),
            ("parameters", f"{_count(totals['params'])} in the model, {_count(analyzed_params)} in analyzed layers")]
    for text in result.notes:
        rows.append(("note", _e(text)))
    meta = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
    return (f"<header><h1>Redundant neurons in <code>{_e(result.model)}</code></h1>"
            f'<p class="verdict">{verdict}</p><dl class="meta">{meta}</dl>'
            '<ul class="howto">'
            "<li>Two neurons are <em>redundant</em> when their incoming weight rows are nearly the same "
            "(high Pearson r, or a small mean absolute difference): one of them can be merged into the other.</li>"
            "<li>In each layer's heatmaps the neurons are reordered so that similar ones sit together; "
            "tick labels are the original neuron indices, black outlines mark the redundant groups.</li>"
            '<li>The same numbers are in <a href="analysis.json">analysis.json</a> '
            "(the document <code>weightkit analyze --json</code> writes).</li></ul>"
            '<p class="toplinks"><a href="#layers">Layer table</a> · <a href="#overview">Overview chart</a>'
            + (' · <a href="#chains">Linear chains</a>' if getattr(result, "linear_chains", ()) else "")
            + (' · <a href="#skipped">Skipped layers</a>' if result.skipped else "")
            + "</p></header>")


def _summary_table(result, anchors):
    mad = result.metric == "mad"
    headers = ["layer", "type", "neurons", "fan-in", "params", "MACs", "mean |r|", "max r", "groups",
               "removable", "removable params"] + (["MAD cutoff"] if mad else [])
    head = "".join(f'<th class="text">{h}</th>' if h in ("layer", "type") else f"<th>{_e(h)}</th>"
                   for h in headers)
    body = []
    for layer in result.layers:
        cells = [f'<td class="text"><a href="#{anchors[layer.name]}">{_e(layer.name)}</a></td>',
                 f'<td class="text">{_e(layer.type)}</td>',
                 f"<td>{_count(layer.neurons)}</td>", f"<td>{_count(layer.fan_in)}</td>",
                 f"<td>{_count(layer.params)}</td>", f"<td>{_count(layer.macs)}</td>",
                 f"<td>{layer.pearson_mean_abs_offdiag:.3f}</td>", f"<td>{layer.pearson_max_offdiag:.3f}</td>",
                 f"<td>{_count(len(layer.groups))}</td>", f'<td class="removable">{_count(layer.removable)}</td>',
                 f"<td>{_count(layer.removable_params)}</td>"]
        if mad:
            cells.append(f"<td>{layer.threshold_value:.4g}</td>")
        klass = ' class="has-groups"' if layer.groups else ""
        body.append(f"<tr{klass}>{''.join(cells)}</tr>")
    totals = result.to_dict()["totals"]
    foot = (f'<tfoot><tr><td class="text">total</td><td class="text"></td>'
            f"<td>{_count(sum(layer.neurons for layer in result.layers))}</td><td></td>"
            f"<td>{_count(totals['analyzed_params'])}</td>"
            f"<td>{_count(sum(layer.macs for layer in result.layers))}</td><td></td><td></td>"
            f"<td>{_count(sum(len(layer.groups) for layer in result.layers))}</td>"
            f"<td>{_count(totals['removable'])}</td><td>{_count(totals['removable_params'])}</td>"
            + ("<td></td>" if mad else "") + "</tr></tfoot>")
    return (f'<section id="layers"><h2>Layers</h2>'
            f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            f"{foot}</table></div></section>")


def _skipped_table(result):
    if not result.skipped:
        return ""
    body = "".join(f'<tr><td class="text">{_e(s.name)}</td><td class="text">{_e(s.type)}</td>'
                   f'<td class="text">{_e(s.reason)}</td></tr>' for s in result.skipped)
    return (f'<section id="skipped"><h2>Skipped layers ({len(result.skipped)})</h2>'
            '<p class="layer-stats">Layers with weights that were not analyzed, and why.</p>'
            '<div class="wide"><table><thead><tr><th class="text">layer</th><th class="text">type</th>'
            f'<th class="text">reason</th></tr></thead><tbody>{body}</tbody></table></div></section>')


def _chains_section(result):
    chains = getattr(result, "linear_chains", ())
    if not chains:
        return ""
    items = "".join(f"<li>{_e(chain.sentence())}.</li>" for chain in chains)
    return (f'<section id="chains"><h2>Linear chains ({len(chains)})</h2>'
            '<p class="layer-stats">Layers with no nonlinearity between them compute one linear map: '
            "<code>weightkit fold</code> replaces each chain by that one layer.</p>"
            f"<ul>{items}</ul></section>")


def _groups_text(layer):
    if not layer.groups:
        return '<p class="groups none">No redundant groups in this layer at this threshold.</p>'
    shown = layer.groups[:_MAX_GROUPS_LISTED]
    items = "".join(f"<span>[{_e(', '.join(map(str, group)))}]</span>" for group in shown)
    more = (f' <span class="none">… and {len(layer.groups) - len(shown):,} more groups in analysis.json</span>'
            if len(layer.groups) > len(shown) else "")
    return (f"<h3>{len(layer.groups):,} redundant group(s), {layer.removable:,} removable neuron(s) "
            f"(original neuron indices)</h3><p class=\"groups\">{items}{more}</p>")


def _layer_section(result, layer, anchor, images):
    if result.metric == "pearson":
        rule = f"r ≥ {1.0 - layer.threshold_value:.4g}"
    else:
        rule = f"MAD ≤ {layer.threshold_value:.4g} ({result.threshold:g} × median {layer.mad_median_offdiag:.4g})"
    stats = (f"{_e(layer.type)} · {_count(layer.neurons)} neurons × {_count(layer.fan_in)} inputs · "
             f"{_count(layer.params)} params · {_count(layer.macs)} MACs · mean |r| "
             f"{layer.pearson_mean_abs_offdiag:.3f} · max r {layer.pearson_max_offdiag:.3f} · "
             f"median MAD {layer.mad_median_offdiag:.4g} · redundant when {_e(rule)}")
    figures = "".join(_image(image, wide=index == len(images) - 1 and len(images) % 2 == 1)
                      for index, image in enumerate(images))
    return (f'<section id="{_e(anchor)}"><h2>{_e(layer.name)}</h2><p class="layer-stats">{stats}</p>'
            f'{_groups_text(layer)}{activation_section_html(layer)}<div class="figures">{figures}</div>'
            '<p class="back"><a href="#layers">↑ back to the layer table</a></p></section>')


def render_page(result, *, images, anchors, overview=None, created="", version="", source=None):
    """The report page as a string.

    Parameters
    ----------
    result : analysis.ModelAnalysis
    images : dict of str to list of ImageRef
        Each analyzed entry's figures, by entry name.
    anchors : dict of str to str
        Each entry's section id (see :func:`anchor_for`).
    overview : ImageRef, default=None
        The removable-per-layer chart.
    created : str
        When the report was made.
    version : str
        The tool's version.
    source : str, default=None
        The model file as the user named it (``result.path`` when None).

    Returns
    -------
    str
        A complete HTML5 document.
    """
    overview_html = (f'<section id="overview"><h2>Removable neurons and parameters per layer</h2>'
                     f"{_image(overview)}</section>" if overview is not None else "")
    sections = "".join(_layer_section(result, layer, anchors[layer.name], images.get(layer.name, []))
                       for layer in result.layers)
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>weightkit report: {_e(result.model)}</title><style>{_CSS}</style></head>"
            f"<body><main>{_header(result, created=created, version=version, source=source)}"
            f"{_summary_table(result, anchors)}{overview_html}{_chains_section(result)}{_skipped_table(result)}{sections}"
            f"{states_section_html(result)}"
            f'<footer>Made by weightkit {_e(version)} on {_e(created)}. Figures: <code>figures/</code>; '
            'data: <a href="analysis.json">analysis.json</a>.</footer></main></body></html>\n')
