"""``sensitivity.png``: each layer's cost of being quantized alone, a sorted horizontal bar chart."""

__all__ = ["plot_sensitivity"]


def plot_sensitivity(sensitivity, path, title="per-layer int8 sensitivity"):
    """Save the bar chart of a :class:`~weightkit.compress.quantize.sensitivity.SensitivityReport` to ``path`` (PNG).

    Two panels share the layers, the most sensitive on top: the accuracy drop in points (disagreement
    with the float model in points without labels), and the mean |output error| on a log scale, which
    still ranks the layers when no prediction changes.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    rows = list(sensitivity.layers)
    by_accuracy = sensitivity.basis == "accuracy"
    values = [(r.accuracy_drop if by_accuracy else 100.0 * (1.0 - r.agreement)) for r in rows]
    measured = [float(r.mean_abs_diff) for r in rows]
    floor = min([e for e in measured if e > 0] or [1e-6]) / 10  # a zero error draws as a stub at a tenth of the least
    errors = [max(e, floor) for e in measured]
    figure = Figure(figsize=(8.0, max(2.0, 0.45 * len(rows) + 1.2)), dpi=100)
    drop_axes, error_axes = figure.subplots(1, 2, sharey=True)
    positions = list(range(len(rows)))[::-1]  # the first (most sensitive) layer on top
    drop_axes.barh(positions, values, color=["tab:red" if v > 0 else "tab:blue" for v in values])
    drop_axes.set_yticks(positions, [r.name for r in rows], fontsize=8)
    for y, value in zip(positions, values):
        drop_axes.annotate(f"{value:+.2f}", (max(value, 0.0), y), textcoords="offset points", xytext=(4, -3),
                           fontsize=7)
    drop_axes.axvline(0.0, color="gray", linewidth=0.8)
    drop_axes.set_xlabel("accuracy drop (points)" if by_accuracy else "disagreement with the float model (points)",
                         fontsize=8)
    drop_axes.margins(x=0.3)
    drop_axes.grid(True, axis="x", alpha=0.3)
    error_axes.barh(positions, errors, color="tab:gray")
    error_axes.set_xscale("log")
    for y, error, shown in zip(positions, measured, errors):
        error_axes.annotate(f"{error:.2g}", (shown, y), textcoords="offset points", xytext=(4, -3), fontsize=7)
    error_axes.set_xlabel("mean |output error| (log)", fontsize=8)
    error_axes.margins(x=0.3)
    error_axes.grid(True, axis="x", alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
