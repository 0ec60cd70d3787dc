"""Terminal rendering of a :class:`compress.RetrainResult`."""

from rich.table import Table

__all__ = ["print_retrain_result"]


def print_retrain_result(result, console):
    """The redundancy of each regularized layer before and after, and the held-out metric.

    Returns
    -------
    list of str
        The result's notes, for the caller to print where its notes go.
    """
    metric = result.metric
    table = Table(title=f"retrain (strength {result.strength:g}, {result.epochs} epochs, loss {result.loss}, "
                        f"{result.strategy} strategy with {result.replicas} replica(s))")
    table.add_column("layer")
    table.add_column("mean |r| before", justify="right")
    table.add_column("after", justify="right")
    table.add_column(f"pairs r≥{result.threshold:g} before", justify="right")
    table.add_column("after", justify="right")
    table.add_column("groups before", justify="right")
    table.add_column("after", justify="right")
    for name, before in result.before["layers"].items():
        after = result.after["layers"][name]
        table.add_row(name, f"{before['mean_abs_r']:.3f}", f"{after['mean_abs_r']:.3f}",
                      str(before["redundant_pairs"]), str(after["redundant_pairs"]),
                      str(before["groups"]), str(after["groups"]))
    console.print(table)
    word = "accuracy" if metric == "accuracy" else "mean absolute error"
    console.print(f"held-out {word}: {result.before[metric]:.4f} before, {result.after[metric]:.4f} after")
    return list(result.notes)
