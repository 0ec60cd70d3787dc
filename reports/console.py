"""Terminal rendering of an analysis result (rich tables)."""

__all__ = ["analysis_table", "format_groups", "print_analysis", "print_fold_report"]


def _count(value):
    return f"{value:,}"


def format_groups(groups, limit=None):
    """Groups as text: ``[0, 4] [1, 6, 7]``, cut after ``limit`` groups (all when None)."""
    limit = len(groups) if limit is None else limit
    shown = " ".join("[" + ", ".join(map(str, group)) + "]" for group in groups[:limit])
    if len(groups) > limit:
        shown += f" … and {len(groups) - limit} more"
    return shown


def analysis_table(result):
    """A rich Table with one row per analyzed layer entry.

    Parameters
    ----------
    result : analysis.ModelAnalysis

    Returns
    -------
    rich.table.Table
    """
    from rich.markup import escape
    from rich.table import Table

    metric = "r ≥" if result.metric == "pearson" else "MAD ≤ median ×"
    table = Table(title=f"{escape(result.model)}: redundant neurons ({metric} {result.threshold:g})",
                  title_justify="left")
    for header in ("layer", "type", "neurons", "fan-in", "params", "MACs", "mean |r|", "groups", "removable"):
        table.add_column(header, justify="left" if header in ("layer", "type") else "right")
    for layer in result.layers:
        table.add_row(escape(layer.name), escape(layer.type), _count(layer.neurons), _count(layer.fan_in),
                      _count(layer.params), _count(layer.macs), f"{layer.pearson_mean_abs_offdiag:.3f}",
                      _count(len(layer.groups)), _count(layer.removable))
    return table


def print_analysis(result, console):
    """Print the table, each layer's groups, the skipped layers and the totals."""
    from rich.markup import escape

    console.print(analysis_table(result))
    for layer in result.layers:
        if layer.groups:
            console.print(f"[bold]{escape(layer.name)}[/bold]: {len(layer.groups)} group(s): {format_groups(layer.groups)}")
    weak = [layer for layer in result.layers
            if result.metric == "pearson" and (layer.pearson_chance_pairs or 0) >= 1 and layer.groups]
    for layer in weak:
        console.print(f"note: {layer.name}: with {layer.fan_in} weights per neuron, about "
                      f"{layer.pearson_chance_pairs:,.0f} pairs reach r ≥ {result.threshold:g} by chance "
                      "alone between unrelated neurons; treat its groups as weak evidence", markup=False)
    for skipped in result.skipped:
        sizes = [skipped.type]
        if skipped.params is not None:
            sizes.append(f"{skipped.params:,} params")
        if skipped.macs is not None:
            sizes.append(f"{skipped.macs:,} MACs")
        console.print(f"skipped {skipped.name} ({', '.join(sizes)}): {skipped.reason}", markup=False)
    for chain in getattr(result, "linear_chains", ()):
        console.print(f"linear chain: {chain.sentence()}", markup=False)
    total = result.to_dict()["totals"]
    console.print(f"total: {total['params']:,} parameters; {total['removable']:,} removable neurons "
                  f"in {len(result.layers)} analyzed layer entries "
                  f"({total['removable_params']:,} of their own parameters)")


def print_fold_report(report, console):
    """Print what ``weightkit fold`` did: each chain folded or left alone (and why), parameters, output error.

    Parameters
    ----------
    report : weightkit.compress.fold.FoldReport
    console : rich.console.Console
    """
    if not report.chains:
        console.print(f"{report.model}: no linear chains (every weighted layer is followed by a nonlinearity); "
                      "the model is unchanged", markup=False)
    for fold in report.chains:
        if fold.folded:
            console.print(f"folded: {fold.chain.sentence()}", markup=False)
        else:
            console.print(f"left alone: {' → '.join(fold.chain.layers)}: {fold.why_not}", markup=False)
    console.print(f"total: {report.params_before:,} → {report.params_after:,} parameters; "
                  f"{len(report.folded)} of {len(report.chains)} chain(s) folded", markup=False)
    if report.max_abs_difference is not None:
        kind = "exact folds" if report.exact else "approximate folds included"
        console.print(f"outputs on {report.inputs}: max |difference| {report.max_abs_difference:.3g} "
                      f"(largest |output| {report.output_scale:.3g}; {kind})", markup=False)
