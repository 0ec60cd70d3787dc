"""Watch neuron redundancy while a model trains.

:func:`redundancy_summary` is the measurement (numpy, through :mod:`analysis`);
:class:`RedundancyMonitor` is the Keras callback that puts it into each epoch's logs, where
``History``, ``CSVLogger`` and ``TensorBoard`` pick it up.
"""

import numpy as np

from weightkit.analysis import find_groups, layer_neuron_rows, pearson_matrix
from weightkit.analysis._tf import import_keras
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.loading import walk_layers
from weightkit.analysis.selection import is_chosen

__all__ = ["RedundancyMonitor", "redundancy_summary", "monitored_entries", "log_key"]

keras = import_keras()

STATISTICS = ("mean_abs_r", "redundant_pairs", "groups")


def log_key(entry_name, statistic):
    """The logs key of one statistic of one entry: ``redundancy/<entry>/<statistic>``."""
    return f"redundancy/{entry_name}/{statistic}"


def redundancy_summary(rows, *, threshold=0.9):
    """Mean |r|, redundant pairs and redundant groups of one set of neuron rows.

    Parameters
    ----------
    rows : ndarray of shape (n_neurons, fan_in)
    threshold : float, default=0.9
        A pair with Pearson ``r >= threshold`` is redundant; groups as :func:`weightkit.analysis.find_groups`.

    Returns
    -------
    dict
        ``{"mean_abs_r": float, "redundant_pairs": int, "groups": int, "removable": int}``;
        ``mean_abs_r`` is over off-diagonal pairs.
    """
    rows = np.asarray(rows)
    n = rows.shape[0]
    if n < 2:
        return {"mean_abs_r": 0.0, "redundant_pairs": 0, "groups": 0, "removable": 0}
    if not np.isfinite(rows).all():  # a diverged run: report it, do not stop training
        return {"mean_abs_r": float("nan"), "redundant_pairs": 0, "groups": 0, "removable": 0}
    r = pearson_matrix(rows)
    upper = r[np.triu_indices(n, 1)]
    groups = find_groups(r, "pearson", threshold)
    return {
        "mean_abs_r": float(np.abs(upper).mean()),
        "redundant_pairs": int(np.count_nonzero(upper >= threshold)),
        "groups": len(groups),
        "removable": int(sum(len(g) - 1 for g in groups)),
    }


def monitored_entries(model, layers=None):
    """The analysis entries (``layer`` or ``layer/part``) of the chosen layers.

    Parameters
    ----------
    model : keras.Model
    layers : list of str, default=None
        Layer or entry names; None watches every analyzable entry with two or more neurons.

    Returns
    -------
    list of (str, keras.layers.Layer)
        Entry name and the layer whose rows give it.
    """
    found = []
    for layer in walk_layers(model):
        if not layer.weights:
            continue
        entries = layer_neuron_rows(layer)
        if entries is None:
            continue
        for entry in entries:
            if entry.n_neurons >= 2 and (layers is None or is_chosen(entry.name, layer.name, layers)):
                found.append((entry.name, layer))
    if layers is not None:
        unknown = [name for name in layers
                   if not any(is_chosen(entry, layer.name, [name]) for entry, layer in found)]
        if unknown:
            raise WeightkitError(
                f"RedundancyMonitor: no analyzable layer named {', '.join(map(repr, unknown))} in model "
                f"{model.name!r}; give the names of Dense, Conv or RNN layers."
            )
    return found


class RedundancyMonitor(keras.callbacks.Callback):
    """Add per-layer neuron redundancy to every epoch's logs.

    For each chosen entry it adds ``redundancy/<entry>/mean_abs_r`` (mean |r| over neuron
    pairs), ``redundancy/<entry>/redundant_pairs`` (pairs with ``r >= threshold``) and
    ``redundancy/<entry>/groups`` (redundant groups, as ``weightkit analyze`` finds them).
    Put it before ``CSVLogger`` or ``TensorBoard`` in the callback list so they see the keys;
    ``History`` always does.

    Parameters
    ----------
    layers : list of str, default=None
        Layer or entry names (``dense_1``, ``lstm/forget``); None watches every analyzable
        entry with two or more neurons.
    threshold : float, default=0.9
        Pearson r at or above which a pair is redundant.

    Attributes
    ----------
    initial : dict
        The same keys measured at the start of training (epoch 0), for before/after curves.

    Examples
    --------
    >>> monitor = RedundancyMonitor(layers=["hidden1"])           # doctest: +SKIP
    >>> history = model.fit(x, y, epochs=5, callbacks=[monitor])  # doctest: +SKIP
    >>> history.history["redundancy/hidden1/mean_abs_r"]          # doctest: +SKIP
    """

    def __init__(self, layers=None, threshold=0.9):
        super().__init__()
        self.layers = None if layers is None else list(layers)
        self.threshold = float(threshold)
        self.initial = {}
        self._entries = None

    def measure(self):
        """The redundancy keys of the current weights, as a dict of floats."""
        if self._entries is None:
            self._entries = monitored_entries(self.model, self.layers)
        logs = {}
        done = {}
        for name, layer in self._entries:
            if id(layer) not in done:
                done[id(layer)] = {e.name: e for e in layer_neuron_rows(layer)}
            summary = redundancy_summary(done[id(layer)][name].rows, threshold=self.threshold)
            for statistic in STATISTICS:
                logs[log_key(name, statistic)] = float(summary[statistic])
        return logs

    def on_train_begin(self, logs=None):
        self._entries = None
        self.initial = self.measure()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.measure())

    def get_config(self):
        return {"layers": self.layers, "threshold": self.threshold}
