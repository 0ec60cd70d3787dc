"""Terminal rendering of a quantization comparison (rich tables)."""

__all__ = ["comparison_table", "failure_lines", "markdown_table", "print_comparison"]

_HEADERS = ("model", "status", "bytes", "× float32", "accuracy", "MAE", "agreement", "max |Δ|", "mean |Δ|",
            "worst class Δ", "ms/sample @1", "samples/s @64")


def _num(value, fmt):
    return "—" if value is None else format(value, fmt)


def _worst(changes):
    values = [v for v in (changes or []) if v is not None]
    return f"{100 * min(values):+.1f} pts" if values else "—"


def comparison_rows(report):
    """The table as lists of strings: the reference row first, then one row per mode."""
    ref = report.reference
    rows = [[f"{ref.kind} (reference)", "ok", f"{ref.bytes:,}", "—", _num(ref.accuracy, ".4f"), _num(ref.mae, ".4g"),
             "—", "—", "—", "—", _num(ref.latency_ms, ".3f"), _num(ref.throughput, ",.0f")]]
    for row in report.modes:
        if not row.ok:
            rows.append([row.mode, "failed"] + ["—"] * (len(_HEADERS) - 2))
            continue
        rows.append([row.mode, "ok", f"{row.bytes:,}", _num(row.size_ratio, ".3f"), _num(row.accuracy, ".4f"),
                     _num(row.mae, ".4g"), _num(row.agreement, ".4f"), _num(row.max_abs_diff, ".2e"),
                     _num(row.mean_abs_diff, ".2e"), _worst(row.per_class_accuracy_change),
                     _num(row.latency_ms, ".3f"), _num(row.throughput, ",.0f")])
    return rows


def _columns(report):
    """Indices of the columns worth showing (no accuracy column without labels, etc.)."""
    keep = list(range(len(_HEADERS)))
    if report.reference.accuracy is None:
        keep.remove(4)
    if report.reference.mae is None:
        keep.remove(5)
    if all(row.per_class_accuracy_change is None for row in report.modes):
        keep.remove(9)
    return keep


def comparison_table(report):
    """A rich Table: the reference row, then one row per mode.

    Parameters
    ----------
    report : QuantizationReport

    Returns
    -------
    rich.table.Table
    """
    from rich.table import Table

    keep = _columns(report)
    table = Table(title=f"{report.model}: quantization modes on the {report.evaluation}", title_justify="left")
    for index in keep:
        table.add_column(_HEADERS[index], justify="left" if index < 2 else "right")
    for cells in comparison_rows(report):
        table.add_row(*[cells[i] for i in keep])
    return table


def markdown_table(report):
    """The same table as GitHub markdown (for a README)."""
    keep = _columns(report)
    lines = ["| " + " | ".join(_HEADERS[i] for i in keep) + " |",
             "|" + "|".join("---" if i < 2 else "---:" for i in keep) + "|"]
    lines += ["| " + " | ".join(cells[i] for i in keep) + " |" for cells in comparison_rows(report)]
    return "\n".join(lines)


def print_comparison(report, console):
    """Print the table, the failed modes' reasons, the notes and the export choice."""
    console.print(comparison_table(report))
    for modes, error in failure_lines(report):
        console.print(f"{modes}: failed: {error}", markup=False, soft_wrap=True)
    for row in report.modes:
        for name, each in (row.outputs or {}).items() if row.ok else ():
            console.print(f"{row.mode}: output {name}: {_output_summary(each)}", markup=False, soft_wrap=True)
    for text in report.notes:
        console.print(f"note: {text}", markup=False, soft_wrap=True)
    if report.exported is not None:
        console.print(f"exported {report.exported.mode} as {report.exported.path}: {report.exported.reason}",
                      markup=False, soft_wrap=True)


def failure_lines(report):
    """``[(modes, reason)]``: each distinct failure reason once, with the modes that share it."""
    grouped = {}
    for row in report.modes:
        if not row.ok:
            grouped.setdefault(row.error, []).append(row.mode)
    return [(", ".join(modes), error) for error, modes in grouped.items()]


def _output_summary(each):
    """One output's comparison in a line: accuracy or MAE before → after, agreement, max |Δ|."""
    parts = []
    if "accuracy_before" in each:
        parts.append(f"accuracy {each['accuracy_before']:.4f} → {each['accuracy_after']:.4f}")
    if "mae_before" in each:
        parts.append(f"MAE {each['mae_before']:.4g} → {each['mae_after']:.4g}")
    if "agreement" in each:
        parts.append(f"agreement {each['agreement']:.4f}")
    parts.append(f"max |Δ| {each['max_abs_output_difference']:.3g}")
    return ", ".join(parts)
