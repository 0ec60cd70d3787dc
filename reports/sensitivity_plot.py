"""``sensitivity.png``: each layer's cost of being quantized alone, a sorted horizontal bar chart."""

__all__ = ["plot_sensitivity"]


def plot_sensitivity(sensitivity, path, title="per-layer int8 sensitivity"):
    """Save the bar chart of a :class:`~compress.quantize.sensitivity.SensitivityReport` to ``path`` (PNG).

    Bars are the accuracy drop in points (disagreement with the float model in points without
    labels), the most sensitive layer on top; each bar is labelled with its mean |output error|.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = list(sensitivity.layers)
    by_accuracy = sensitivity.basis == "accuracy"
    values = [(r.accuracy_drop if by_accuracy else 100.0 * (1.0 - r.agreement)) for r in rows]
    figure = Figure(figsize=(6.4, max(2.0, 0.45 * len(rows) + 1.2)), dpi=100)
    axes = figure.add_subplot()
    positions = list(range(len(rows)))[::-1]  # the first (most sensitive) layer on top
    axes.barh(positions, values, color=["tab:red" if v > 0 else "tab:blue" for v in values])
    axes.set_yticks(positions, [r.name for r in rows], fontsize=8)
    for y, value, row in zip(positions, values, rows):
        axes.annotate(f"mean |Δ| {row.mean_abs_diff:.2g}", (max(value, 0.0), y), textcoords="offset points",
                      xytext=(4, -3), fontsize=7)
    axes.axvline(0.0, color="gray", linewidth=0.8)
    axes.set_xlabel("accuracy drop (points)" if by_accuracy else "disagreement with the float model (points)")
    axes.set_title(title, fontsize=10)
    axes.margins(x=0.25)
    axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
