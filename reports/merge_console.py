"""Terminal rendering of a weight merge (``MergeReport``) and the lines every merge report ends with."""

__all__ = [
    "evaluation_line",
    "nothing_to_merge",
    "print_groups",
    "print_merge_report",
    "print_notes_and_evaluation",
    "print_parameter_change",
]


def print_groups(report, console):
    """One line per coupled channel group merged: its producers and every layer it changed."""
    for layer in report.layers:
        if getattr(layer, "producers", None):
            others = [m for m in layer.members if m not in layer.producers]
            console.print(f"  group {layer.name}: {layer.neurons_before} → {layer.neurons_after} channels, "
                          f"producers {', '.join(layer.producers)}; also changed: {', '.join(others) or 'nothing else'}")


#: ``unit -> (how a budget in it is written, the verb of a drop in it)`` (``merge --max-drop``'s ``budget["unit"]``).
_BUDGET_WORDS = {"accuracy": ("accuracy points", "lost"), "agreement": ("agreement points", "lost"),
                 "mae": ("MAE", "added")}


def _nothing_within(model, budget):
    """The line for a ``--max-drop`` merge whose every probed step exceeded the budget."""
    unit, verb = _BUDGET_WORDS[budget["unit"]]
    least = min(budget["probes"], key=lambda probe: probe["drop"])
    return (f"{model}: no merge is within --max-drop {budget['max_drop']:g} {unit}, so no copy was written: the "
            f"step tried that cost least, path step {least['index']} of {budget['path_steps']} "
            f"({sum(least['removed'].values())} neurons), {verb} {least['drop']:.3g} {unit} on the "
            f"{budget['validation_samples']} validation samples. Give a larger --max-drop, or --ratio for a fixed "
            "size.")


def nothing_to_merge(model, report):
    """The one line for a model where every layer is left alone (the command exits 2, writes nothing), or where
    no step of a ``--max-drop`` search was within its budget."""
    budget = getattr(report, "budget", None)
    if budget and not budget.get("removed") and budget.get("probes"):
        return _nothing_within(model, budget)
    reasons = [f"{s.name} ({s.reason})" for s in report.skipped]
    shown = "; ".join(reasons[:2]) + (f"; and {len(reasons) - 2} more" if len(reasons) > 2 else "")
    return (f"{model}: nothing can be merged, so no copy was written: every layer is left alone"
            + (f" ({shown})" if shown else "") + ". Run weightkit analyze to see each layer.")


def print_parameter_change(report, console):
    """The whole model's parameters before and after, and the neurons removed, on one line."""
    change = 1 - report.params_after / max(report.params_before, 1)
    console.print(f"model parameters {report.params_before:,} → {report.params_after:,} ({change:.1%} fewer), "
                  f"{report.removed} neurons removed")


def evaluation_line(evaluation):
    """One line comparing the models on held-out data (see ``weightkit.compress.merge.reporting.report.compare_models``)."""
    line = f"on {evaluation['samples']} held-out samples of {evaluation.get('data', 'the data')}:"
    if "accuracy_before" in evaluation:
        line += (f" accuracy {evaluation['accuracy_before']:.4f} → {evaluation['accuracy_after']:.4f},"
                 f" agreement {evaluation['agreement']:.4f},")
    elif "mae_before" in evaluation:
        line += f" MAE {evaluation['mae_before']:.4g} → {evaluation['mae_after']:.4g},"
    elif "agreement" in evaluation:
        line += f" agreement {evaluation['agreement']:.4f},"
    line += f" max output difference {evaluation['max_abs_output_difference']:.3g}"
    for name, each in evaluation.get("outputs", {}).items():
        line += f"\n  output {name}: " + _output_part(each)
    return line


def _output_part(evaluation):
    parts = []
    if "accuracy_before" in evaluation:
        parts.append(f"accuracy {evaluation['accuracy_before']:.4f} → {evaluation['accuracy_after']:.4f}")
    if "mae_before" in evaluation:
        parts.append(f"MAE {evaluation['mae_before']:.4g} → {evaluation['mae_after']:.4g}")
    if "agreement" in evaluation:
        parts.append(f"agreement {evaluation['agreement']:.4f}")
    parts.append(f"max output difference {evaluation['max_abs_output_difference']:.3g}")
    return ", ".join(parts)


def print_notes_and_evaluation(report, console):
    """The report's notes, then the held-out evaluation line when there is one."""
    for text in report.notes:
        console.print(f"  note: {text}")
    if report.evaluation:
        console.print(evaluation_line(report.evaluation))
    if getattr(report, "warning", None):
        console.print(report.warning)


def print_merge_report(report, console):
    """Render a MergeReport with rich: one row per layer, then what was left alone and why."""
    from rich.table import Table

    mode = f"ratio {report.ratio:g}" if report.ratio is not None else f"threshold {report.threshold:g}"
    table = Table(title=f"{report.model}: merged by {report.metric}, {mode}")
    for column in ("layer", "activation", "neurons", "params", "exact merges", "left alone"):
        table.add_column(column, justify="left" if column in ("layer", "activation") else "right")
    for layer in report.layers:
        exact = sum(m["exact"] for m in layer.merges)
        table.add_row(layer.name, layer.activation, f"{layer.neurons_before} → {layer.neurons_after}",
                      f"{layer.params_before:,} → {layer.params_after:,}", f"{exact}/{len(layer.merges)}",
                      str(len(layer.left_alone)))
    console.print(table)
    print_parameter_change(report, console)
    for skipped in report.skipped:
        console.print(f"  left alone: {skipped.name} ({skipped.type}): {skipped.reason}")
    for layer in report.layers:
        reasons = {}
        for item in layer.left_alone:
            reasons.setdefault(item["reason"], []).append(item["neuron"])
        for reason, neurons in reasons.items():
            console.print(f"  {layer.name}: {getattr(layer, 'unit', 'neuron')}s {', '.join(map(str, neurons[:8]))}"
                          f"{' ...' if len(neurons) > 8 else ''} not merged: {reason}")
        for text in layer.notes:
            console.print(f"  {layer.name}: {text}")
    print_notes_and_evaluation(report, console)
