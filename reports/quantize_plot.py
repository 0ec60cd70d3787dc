"""``comparison.png``: accuracy (MAE, or agreement without data) against file size, one point per mode."""

import math
import os

__all__ = ["plot_comparison", "plot_axis"]


def plot_axis(report):
    """(label, reference value or None, value of a ModeResult) for the report's y axis."""
    if report.drop_basis == "accuracy":
        return "test accuracy", report.reference.accuracy, lambda row: row.accuracy
    if report.drop_basis == "mae":
        return "test MAE (lower is better)", report.reference.mae, lambda row: row.mae
    return "agreement with the reference model", 1.0, lambda row: row.agreement


def plot_comparison(report, path):
    """Save the size-versus-quality scatter plot of a :class:`QuantizationReport` to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    label, reference, value = plot_axis(report)
    rows = [row for row in report.modes if row.ok]
    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    axes = figure.add_subplot()
    exported = report.exported.mode if report.exported else None
    # Points close together (same size class and score) get their labels stacked upwards.
    values = [value(row) for row in rows]
    spread = (max(values) - min(values)) or 1e-3 if values else 1.0
    placed = []
    for row in sorted(rows, key=lambda r: r.bytes):
        chosen = row.mode == exported
        x, y = row.bytes / 1024, value(row)
        crowd = sum(1 for px, py in placed if abs(math.log(x / px)) < 0.1 and abs(y - py) < 0.08 * spread)
        placed.append((x, y))
        axes.scatter(x, y, s=110 if chosen else 40, marker="*" if chosen else "o",
                     color="tab:red" if chosen else "tab:blue", zorder=3)
        axes.annotate(row.mode + (" (exported)" if chosen else ""), (x, y), textcoords="offset points",
                      xytext=(4, 5 + 10 * crowd), fontsize=8)
    if reference is not None:
        axes.axhline(reference, color="gray", linestyle="--", linewidth=1,
                     label=f"{report.reference.kind} model ({reference:.4g})")
        axes.legend(loc="best", fontsize=8)
    if len({row.bytes for row in rows}) > 1:
        from matplotlib.ticker import FuncFormatter

        axes.set_xscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        axes.xaxis.set_major_formatter(plain)
        axes.xaxis.set_minor_formatter(plain)
    axes.margins(x=0.15, y=0.2)
    axes.set_xlabel("file size (KiB)")
    axes.set_ylabel(label)
    axes.set_title(f"{os.path.basename(str(report.model).rstrip('/')) or report.model}: quantization modes", fontsize=10)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path



