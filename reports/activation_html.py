"""The report page's activation text for one layer: dead neurons and activation groups (escaped HTML)."""

import html

__all__ = ["activation_section_html"]

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
    return dead_html + groups_html
