"""Training curves of a retrain: loss, accuracy (or MAE) and mean |r| per epoch."""

__all__ = ["plot_retrain"]


def plot_retrain(result, path):
    """Draw a :class:`weightkit.compress.decorrelate.training.RetrainResult`'s history to an image file.

    Three panels side by side: training and validation loss; training and validation
    accuracy (MAE for regression); mean |r| of each regularized entry, epoch 0 being the
    model before retraining. Drawn with matplotlib's Agg backend; the figure is closed.

    Parameters
    ----------
    result : RetrainResult
    path : str
        Output file; its extension picks the format (``.png``).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    history = result.history
    epochs = history.get("epoch", [])
    figure = Figure(figsize=(13, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3)
    for axis, key, title in ((axes[0], "loss", "loss"), (axes[1], _metric_key(history, result.metric), result.metric)):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + key)
            if values:
                axis.plot(epochs, values, style, marker="o", markersize=3,
                          label="validation" if prefix else "training")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=8)
    for entry in result.layers_in_history():
        values = history[f"redundancy/{entry}/mean_abs_r"]
        axes[2].plot(range(len(values)), values, marker="o", markersize=3, label=entry)
    axes[2].set_title("mean |r| between neuron weight rows")
    axes[2].set_xlabel("epoch (0 = before)")
    axes[2].set_ylim(bottom=0)
    if result.layers_in_history():
        axes[2].legend(fontsize=8)
    figure.suptitle(f"retrain: strength {result.strength:g}, loss {result.loss.split(' ')[0]}", fontsize=10)
    figure.savefig(path, dpi=110)


def _metric_key(history, metric):
    """The history key of the task metric: ``accuracy``, or the first output's ``<name>_accuracy`` with several."""
    if metric in history:
        return metric
    named = [key for key in history if key.endswith("_" + metric) and not key.startswith("val_")]
    return named[0] if named else metric
