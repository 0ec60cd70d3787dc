"""Terminal rendering of what neurons do on data: dead neurons, activation groups, data-aware merges."""

from typing import NamedTuple

from weightkit.reports.console import format_groups
from weightkit.reports.merge_console import print_notes_and_evaluation, print_parameter_change

__all__ = ["activation_table", "print_activations", "data_merge_table", "print_data_merge_report", "format_indices"]


def format_indices(indices, limit=16):
    """Neuron indices as text: ``3, 17, 40`` cut after ``limit`` with a count of the rest."""
    indices = list(indices)
    shown = ", ".join(map(str, indices[:limit]))
    if len(indices) > limit:
        shown += f" … and {len(indices) - limit} more"
    return shown


class _Row(NamedTuple):
    name: str
    neurons: int
    extras: dict
    weight_groups: str


def _activation_entries(result):
    """Every entry with activation results; a recurrent layer's hidden state (``result.states``) after its gates."""
    states = {}
    for state in getattr(result, "states", ()):
        states.setdefault(state.layer_name, []).append(_Row(state.name, state.neurons, state.to_extras(), "–"))
    layers = [layer for layer in result.layers if "activation" in layer.extras]
    rows = []
    for index, layer in enumerate(layers):
        rows.append(_Row(layer.name, layer.neurons, layer.extras, f"{len(layer.groups):,}"))
        if index + 1 == len(layers) or layers[index + 1].layer_name != layer.layer_name:
            rows.extend(states.pop(layer.layer_name, []))
    return rows + [row for rest in states.values() for row in rest]


def activation_table(result):
    """A rich Table of the activation extras of a ModelAnalysis (see ``weightkit.analysis.attach_activations``).

    Returns
    -------
    rich.table.Table or None
        None when no layer carries activation results.
    """
    from rich.table import Table

    entries = _activation_entries(result)
    if not entries:
        return None
    samples = next((layer.extras["activation"].get("samples") for layer in entries
                    if "samples" in layer.extras["activation"]), None)
    title = f"{result.model}: what neurons do on {samples} data samples" if samples else f"{result.model}: activations"
    table = Table(title=title, title_justify="left")
    for header in ("layer", "neurons", "dead", "act. mean |r|", "act. max r", "act. groups", "act. removable",
                   "weight groups"):
        table.add_column(header, justify="left" if header == "layer" else "right")
    for layer in entries:
        activation = layer.extras["activation"]
        if "skipped" in activation:
            table.add_row(layer.name, f"{layer.neurons:,}", "–", "–", "–", "–", "–", layer.weight_groups)
            continue
        table.add_row(layer.name, f"{layer.neurons:,}", f"{len(layer.extras['dead']):,}",
                      f"{activation['pearson']['mean_abs_offdiag']:.3f}", f"{activation['pearson']['max_offdiag']:.3f}",
                      f"{len(activation['groups']):,}", f"{activation['removable']:,}", layer.weight_groups)
    return table


def print_activations(result, console):
    """Print the activation table, each layer's dead neurons and activation groups, and skips."""
    table = activation_table(result)
    if table is None:
        return
    console.print(table)
    for layer in _activation_entries(result):
        activation = layer.extras["activation"]
        if "skipped" in activation:
            console.print(f"activations of {layer.name} not collected: {activation['skipped']}")
            continue
        if layer.extras["dead"]:
            console.print(f"[bold]{layer.name}[/bold]: dead on the sample (constant): "
                          f"{format_indices(layer.extras['dead'])}")
        if activation["groups"]:
            console.print(f"[bold]{layer.name}[/bold]: {len(activation['groups'])} activation group(s): "
                          f"{format_groups(activation['groups'], limit=len(activation['groups']))}")
        heads = layer.extras.get("heads")
        if heads is not None:
            console.print(f"[bold]{layer.name}[/bold]: attention entropy / uniform per head "
                          f"{', '.join(f'{v:.2f}' for v in heads['entropy_ratio'])}; contribution per head "
                          f"{', '.join(f'{v:.3g}' for v in heads['contribution'])}; uniform: "
                          f"{format_indices(heads['uniform']) if heads['uniform'] else 'none'}; silent: "
                          f"{format_indices(heads['silent']) if heads['silent'] else 'none'}")
    if any(layer.extras["activation"].get("summary") == "mean" for layer in _activation_entries(result)):
        console.print("layers with positions (conv, sequences): activations are per-channel means over positions; "
                      "dead means constant at every position")


#: How ``merge --max-drop`` budgets are written (mirrors weightkit.compress.shrink.judge.UNITS).
UNITS_WRITTEN = {"accuracy": "accuracy points", "agreement": "agreement points", "mae": "MAE"}


def data_merge_table(report):
    """A rich Table with one row per layer of a DataMergeReport."""
    from rich.table import Table

    if getattr(report, "budget", None):  # merge --max-drop
        budget = f"max drop {report.budget['max_drop']:g} {UNITS_WRITTEN[report.budget['unit']]}"
    else:
        budget = f"ratio {report.ratio:g}" if report.ratio is not None else f"max error {report.max_error:g}"
    table = Table(title=f"{report.model}: merged by data ({budget}, {report.samples} calibration inputs)",
                  title_justify="left")
    for header in ("layer", "fitted on", "neurons", "params", "removed", "dead", "min R²", "median R²",
                   "input error"):
        table.add_column(header, justify="left" if header in ("layer", "fitted on") else "right")
    for layer in report.layers:
        r2 = sorted(item["r2"] for item in layer.removed)
        median = r2[len(r2) // 2] if r2 else None
        table.add_row(layer.name, layer.tap, f"{layer.neurons_before} → {layer.neurons_after}",
                      f"{layer.params_before:,} → {layer.params_after:,}", str(layer.n_removed),
                      str(sum(item["dead"] for item in layer.removed)),
                      "–" if not r2 else f"{r2[0]:.4f}", "–" if median is None else f"{median:.4f}",
                      f"{layer.error:.2%}")
    return table


def print_data_merge_report(report, console):
    """Render a DataMergeReport: the table, the R² of each removed neuron, skips, notes, evaluation."""
    console.print(data_merge_table(report))
    print_parameter_change(report, console)
    for layer in report.layers:
        if layer.removed:
            shown = ", ".join(f"{item['neuron']} ({item['r2']:.3f})" for item in layer.removed[:12])
            more = f" … and {len(layer.removed) - 12} more" if len(layer.removed) > 12 else ""
            console.print(f"  {layer.name}: removed {getattr(layer, 'unit', 'neuron')} (R²): {shown}{more}")
        for text in layer.notes:
            console.print(f"  {layer.name}: {text}")
    for skipped in report.skipped:
        console.print(f"  left alone: {skipped.name} ({skipped.type}): {skipped.reason}")
    print_notes_and_evaluation(report, console)
