"""The report page's activation text for one layer: dead neurons and activation groups (escaped HTML)."""

import html
from types import SimpleNamespace

__all__ = ["activation_section_html", "states_section_html"]

_MAX_LISTED = 300


def activation_section_html(layer):
    """The dead neurons and activation groups of one layer as HTML ('' without activation results)."""
    activation = layer.extras.get("activation")
    if activation is None:
        return ""
    if "skipped" in activation:
        return f'<p class="groups none">Activations not collected: {html.escape(activation["skipped"])}.</p>'
    dead = layer.extras.get("dead") or []
    if dead:
        shown = ", ".join(map(str, dead[:_MAX_LISTED]))
        more = f" … and {len(dead) - _MAX_LISTED:,} more in analysis.json" if len(dead) > _MAX_LISTED else ""
        dead_html = (f"<h3>{len(dead):,} dead neuron(s) (constant on {activation['samples']:,} samples)</h3>"
                     f'<p class="groups">{html.escape(shown + more)}</p>')
    else:
        dead_html = f'<p class="groups none">No dead neurons on {activation["samples"]:,} samples.</p>'
    groups = activation["groups"]
    if groups:
        items = "".join(f"<span>[{html.escape(', '.join(map(str, group)))}]</span>" for group in groups[:_MAX_LISTED])
        groups_html = (f"<h3>{len(groups):,} activation group(s), {activation['removable']:,} removable "
                       f"(mean |r| {activation['pearson']['mean_abs_offdiag']:.3f})</h3><p class=\"groups\">{items}</p>")
    else:
        groups_html = '<p class="groups none">No redundant groups among the activations at this threshold.</p>'
    return dead_html + groups_html + _heads_html(layer.extras.get("heads"))


def _heads_html(heads):
    """Per attention head: entropy relative to uniform and contribution, flagged heads marked ('' for other layers)."""
    if heads is None:
        return ""
    flagged = {i: "uniform" for i in heads["uniform"]}
    for i in heads["silent"]:
        flagged[i] = "silent" if i not in flagged else "uniform, silent"
    rows = "".join(f"<tr><td>{i}</td><td>{ratio:.3f}</td><td>{entropy:.3f}</td><td>{contribution:.4g}</td>"
                   f"<td>{flagged.get(i, '')}</td></tr>"
                   for i, (ratio, entropy, contribution) in enumerate(zip(heads["entropy_ratio"], heads["entropy"],
                                                                         heads["contribution"])))
    return ("<h3>Attention heads: entropy (1 = uniform attention) and contribution after the output projection</h3>"
            "<table><tr><th>head</th><th>entropy / uniform</th><th>entropy (nats)</th><th>contribution</th>"
            f"<th>flag</th></tr>{rows}</table>")


def states_section_html(result):
    """The hidden states of recurrent layers (``result.states``): a table, then each one's dead neurons and groups."""
    states = getattr(result, "states", ())
    if not states:
        return ""
    e = html.escape
    body = "".join(
        f'<tr><td class="text">{e(s.name)}</td><td class="text">{e(s.type)}</td><td>{s.neurons:,}</td>'
        f"<td>{len(s.dead):,}</td><td>{s.pearson_mean_abs_offdiag:.3f}</td><td>{s.pearson_max_offdiag:.3f}</td>"
        f"<td>{s.mad_median_offdiag:.4g}</td><td>{len(s.groups):,}</td><td>{s.removable:,}</td></tr>" for s in states)
    details = "".join(f"<h3>{e(s.name)}</h3>{activation_section_html(SimpleNamespace(extras=s.to_extras()))}"
                      for s in states)
    return ('<section id="states"><h2>Hidden states of recurrent layers</h2>'
            '<p class="layer-stats">Their weight entries are the gates, whose activations never leave the cell; the '
            "layer's output, its hidden state (with return_sequences every step's, summarized as per-unit means), is "
            "analyzed here on the data.</p>"
            '<div class="wide"><table><thead><tr><th class="text">entry</th><th class="text">type</th>'
            "<th>neurons</th><th>dead</th><th>act. mean |r|</th><th>act. max r</th><th>act. median MAD</th>"
            f"<th>act. groups</th><th>act. removable</th></tr></thead><tbody>{body}</tbody></table></div>"
            f"{details}</section>")
