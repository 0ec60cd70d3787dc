"""``frontier.png``: every candidate of a shrink run, file size against test accuracy, the export marked."""

__all__ = ["plot_frontier"]

#: stage -> (colour, marker, legend label)
_STYLE = {
    "original": ("tab:gray", "s", "original"),
    "stream": ("tab:brown", "v", "residual stream sliced (+ fine-tune)"),
    "merge": ("tab:orange", "o", "merged (path step)"),
    "fine-tune": ("tab:green", "o", "merged + distillation fine-tune"),
    "quantize": ("tab:blue", "D", "merged + quantized (.tflite)"),
}


def plot_frontier(frontier, path):
    """Save the frontier scatter plot of a :meth:`weightkit.compress.shrink.ShrinkResult.frontier` document to ``path``.

    Parameters
    ----------
    frontier : dict
        ``{"model", "max_drop", "unit", "metric", "candidates": [{"key", "stage", "bytes",
        "bytes_estimated", "test_<metric>", "chosen", "title"}...]}`` (``metric`` absent: accuracy);
        stages other than the four of shrink (a demo's own) are drawn in purple and labelled with
        their title.
    path : str
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    metric = frontier.get("metric", "accuracy")
    score = f"test_{metric}"  # test_accuracy, test_agreement, test_mae (ShrinkResult.frontier)
    candidates = [c for c in frontier["candidates"] if c.get(score) is not None and c.get("bytes")]
    mae = frontier.get("unit") == "mae"  # a regression: the budget is MAE added
    scale = 1.0 if mae else 100.0
    figure = Figure(figsize=(7.2, 4.6), dpi=100)
    axes = figure.add_subplot()
    seen, placed = set(), []
    for candidate in candidates:
        colour, marker, label = _STYLE.get(candidate["stage"], ("tab:purple", "^", "demo stages (float Keras)"))
        x, y = candidate["bytes"] / 1024, scale * candidate[score]
        hollow = candidate.get("bytes_estimated")
        axes.scatter(x, y, s=45, marker=marker, zorder=3, label=None if label in seen else label,
                     facecolors="none" if hollow else colour, edgecolors=colour)
        seen.add(label)
        if candidate["stage"] not in ("merge", "fine-tune", "stream") or candidate.get("chosen"):
            # Labels of points close together (a factor 1.6 in size, a point of accuracy) stack downwards.
            crowd = sum(1 for px, py in placed if 1 / 1.6 < x / px < 1.6 and abs(y - py) < 1.0)
            placed.append((x, y))
            axes.annotate(candidate.get("title") or candidate["key"], (x, y), textcoords="offset points",
                          xytext=(5, 4 - 10 * crowd), fontsize=7)
    chosen = [c for c in candidates if c.get("chosen")]
    for candidate in chosen:
        axes.scatter(candidate["bytes"] / 1024, scale * candidate[score], s=260, marker="*",
                     color="tab:red", zorder=4, label="exported (model.tflite)")
    original = next((c for c in candidates if c["key"] == "original"), None)
    if original is not None:
        level = scale * original[score]
        axes.axhline(level + frontier["max_drop"] if mae else level - frontier["max_drop"], color="tab:red",
                     linestyle=":", linewidth=1, label=f"original + {frontier['max_drop']:g} MAE" if mae
                     else f"original − {frontier['max_drop']:g} points")
    axes.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    axes.xaxis.set_major_formatter(plain)
    axes.set_xlabel("size (KiB; hollow: float Keras, 4 bytes per parameter)")
    axes.set_ylabel({"mae": "test MAE", "mae_to_original": "test MAE to the original"}.get(metric,
                                                                                       f"test {metric} (%)"))
    axes.set_title(f"{frontier['model']}: shrink frontier (choices on the validation split)", fontsize=10)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best" if mae else "lower right", fontsize=7)  # lower is better for an MAE
    figure.tight_layout()
    figure.savefig(path, format="png")
