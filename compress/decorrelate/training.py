"""Retrain a model with the decorrelation regularizer and measure redundancy before and after.

The glue between a loaded model, a :class:`analysis.data.Dataset` and Keras' ``fit``: choose a
``tf.distribute`` strategy, copy the model into it, pick the loss, attach the regularizer, train
with a backup that survives interruption, and report accuracy and redundancy before and after.
The command line (``weightkit retrain``) only adds file handling around :func:`retrain`; the
check that training did not diverge is here.
"""

import csv
import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from analysis._tf import import_keras, import_tensorflow
from analysis.data_checks import output_activations
from analysis.errors import WeightkitError
from analysis.inputs import as_dataset, as_model
from analysis.rows import layer_neuron_rows
from compress.decorrelate.kernels import attach_decorrelation, detach_decorrelation
from compress.decorrelate.monitor import RedundancyMonitor, monitored_entries, redundancy_summary

__all__ = ["DEFAULT_STRENGTH", "LOSSES", "RetrainResult", "choose_strategy", "infer_loss",
           "evaluate_task", "retrain", "redundancy_of"]

keras = import_keras()

#: Default ``--strength``: chosen with ``benchmarks/bench_regularizer.py`` (see the README).
DEFAULT_STRENGTH = 1.0

HISTORY_FILE = "history.csv"

#: ``--loss`` names and their Keras classes; ``from_logits`` is set when the output is linear.
LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "mean_squared_error": keras.losses.MeanSquaredError,
    "mean_absolute_error": keras.losses.MeanAbsoluteError,
    "huber": keras.losses.Huber,
}
_LOGIT_LOSSES = {"sparse_categorical_crossentropy", "categorical_crossentropy", "binary_crossentropy"}


@dataclass
class RetrainResult:
    """What a retrain did and measured.

    Attributes
    ----------
    metric : {"accuracy", "mae"}
        The task metric on held-out data (MAE for regression).
    before, after : dict
        ``{metric: float, "layers": {entry: {"mean_abs_r", "redundant_pairs", "groups",
        "removable"}}}`` on the held-out split, before and after training.
    history : dict of str to list of float
        Per-epoch logs (loss, metric, ``val_*``, ``redundancy/<entry>/...``) over every epoch,
        resumed runs included; ``history["epoch"]`` numbers them from 1.
    initial_epoch : int
        Epochs already done by an interrupted run this one resumed (0 when fresh).
    """

    loss: str
    metric: str
    strength: float
    layers: list
    epochs: int
    initial_epoch: int
    strategy: str
    replicas: int
    threshold: float
    before: dict
    after: dict
    history: dict
    notes: list = field(default_factory=list)

    def layers_in_history(self):
        """Entries whose mean |r| is in the history, in order."""
        prefix, suffix = "redundancy/", "/mean_abs_r"
        return [k[len(prefix):-len(suffix)] for k in self.history if k.startswith(prefix) and k.endswith(suffix)]

    def to_dict(self):
        return {
            "loss": self.loss, "metric": self.metric, "strength": self.strength, "layers": self.layers,
            "epochs": self.epochs, "initial_epoch": self.initial_epoch, "strategy": self.strategy,
            "replicas": self.replicas, "threshold": self.threshold, "before": self.before,
            "after": self.after, "history": self.history, "notes": self.notes,
        }


def choose_strategy():
    """The ``tf.distribute`` strategy to train under.

    ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set (a multi-machine job), else
    ``MirroredStrategy`` over the local GPUs (or logical CPUs) when there are several, else the
    default strategy.

    Returns
    -------
    strategy : tf.distribute.Strategy
    name : str
    """
    tf = import_tensorflow()
    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy(), "MultiWorkerMirroredStrategy"
    for kind in ("GPU", "CPU"):
        devices = tf.config.list_logical_devices(kind)
        if len(devices) > 1:
            return tf.distribute.MirroredStrategy([d.name for d in devices]), "MirroredStrategy"
        if kind == "GPU" and devices:
            break
    return tf.distribute.get_strategy(), "default"


def _output_activation(model):
    return output_activations(model)[0]


def _output_width(model):
    return int(model.outputs[0].shape[-1] or 1)


def infer_loss(model, dataset, name=None):
    """The loss to train with: ``name`` when given, else from the output layer and labels.

    Parameters
    ----------
    model : keras.Model
    dataset : Dataset
    name : str, default=None
        One of :data:`LOSSES` (``--loss``).

    Returns
    -------
    loss : keras.losses.Loss
    description : str
        e.g. ``"sparse_categorical_crossentropy (inferred: softmax output, integer labels)"``.
    """
    activation = _output_activation(model)
    logits = activation in ("linear", None)
    if name is not None:
        if name not in LOSSES:
            raise WeightkitError(f"--loss: unknown loss {name!r}; expected one of {', '.join(LOSSES)}.")
        if name in _LOGIT_LOSSES:
            return LOSSES[name](from_logits=logits), name + (" (from logits)" if logits else "")
        return LOSSES[name](), name
    width = _output_width(model)
    one_hot = dataset.y_train.ndim == 2 and dataset.y_train.shape[1] > 1
    if dataset.task == "regression":
        if activation in ("linear", "relu", "softplus", "exponential"):
            return keras.losses.MeanSquaredError(), f"mean_squared_error (inferred: {activation} output, real-valued labels)"
    elif activation in ("softmax", "linear") and width > 1:
        kind = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
        labels = "one-hot labels" if one_hot else "integer labels"
        return (LOSSES[kind](from_logits=logits),
                f"{kind}{' (from logits)' if logits else ''} (inferred: {activation} output, {labels})")
    elif activation in ("sigmoid", "linear") and width == 1:
        return (keras.losses.BinaryCrossentropy(from_logits=logits),
                f"binary_crossentropy{' (from logits)' if logits else ''} (inferred: {activation} output, 0/1 labels)")
    elif activation == "sigmoid":
        return keras.losses.BinaryCrossentropy(), "binary_crossentropy (inferred: sigmoid output, multi-label)"
    raise WeightkitError(
        f"model {model.name!r}: cannot infer a loss for a {activation} output of width {width} with "
        f"{dataset.task} labels; pass --loss (one of {', '.join(LOSSES)})."
    )


def evaluate_task(model, x, y, task, *, batch_size=256):
    """Accuracy (classification) or mean absolute error (regression) on held-out data.

    Returns
    -------
    metric : {"accuracy", "mae"}
    value : float
    """
    predictions = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    y = np.asarray(y)
    if task == "regression":
        return "mae", float(np.mean(np.abs(predictions.reshape(len(y), -1) - y.reshape(len(y), -1))))
    if predictions.ndim == 2 and predictions.shape[1] > 1:
        truth = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1)
        return "accuracy", float(np.mean(predictions.argmax(axis=1) == truth))
    cut = 0.5 if _output_activation(model) == "sigmoid" else 0.0
    return "accuracy", float(np.mean((predictions.reshape(-1) > cut) == (y.reshape(-1) > 0.5)))


def redundancy_of(model, names, threshold=0.9):
    """Redundancy summary of each analysis entry of the named layers (see :func:`redundancy_summary`)."""
    summaries = {}
    for entry_name, layer in monitored_entries(model, names):
        rows = {e.name: e for e in layer_neuron_rows(layer)}[entry_name].rows
        summaries[entry_name] = redundancy_summary(rows, threshold=threshold)
    return summaries


def _copy_into(model, strategy):
    """A copy of ``model`` built under ``strategy`` with the same weights; the input stays untouched."""
    try:
        with strategy.scope():
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
        return copy, None
    except Exception as error:  # noqa: BLE001 - subclassed models cannot be cloned
        if strategy is import_tensorflow().distribute.get_strategy():
            return model, f"could not copy the model ({type(error).__name__}); trained the loaded copy in place"
        raise WeightkitError(
            f"model {model.name!r}: cannot be rebuilt for multi-device training ({type(error).__name__}); "
            "save it as a Functional or Sequential model, or run on one device."
        ) from error


def _read_history(path):
    if not os.path.exists(path):
        return {}
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_epoch = {}
    for row in rows:  # a rerun epoch (interrupted after logging, before its backup) replaces the old row
        by_epoch[int(row["epoch"])] = row
    history = {}
    for epoch in sorted(by_epoch):
        for key, value in by_epoch[epoch].items():
            if key == "epoch":
                continue
            # CSVLogger writes "NA" for keys an epoch lacks (and invents val_* columns without validation).
            history.setdefault(key, []).append(float(value) if value not in ("", "NA", None) else float("nan"))
    history = {key: values for key, values in history.items() if not all(np.isnan(values))}
    history["epoch"] = [epoch + 1 for epoch in sorted(by_epoch)]
    return history


def _validation_split(dataset, fraction, seed):
    if not fraction:
        return dataset.x_train, dataset.y_train, None
    n = len(dataset.x_train)
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise WeightkitError(
            f"--validation-split {fraction}: leaves {n_val} of {n} training samples for validation; "
            "give a fraction that leaves at least one sample on each side (e.g. 0.1)."
        )
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:n_val], order[n_val:]
    return dataset.x_train[train], dataset.y_train[train], (dataset.x_train[val], dataset.y_train[val])


def retrain(model, dataset, *, strength=DEFAULT_STRENGTH, epochs=10, layers=None, batch_size=32,
            learning_rate=1e-3, validation_split=0.1, loss=None, compiled_loss=None, work_dir=None,
            resume=False, keep_regularizer=False, threshold=0.9, seed=0, callbacks=(), verbose=0,
            label=None, unsafe=False):
    """Fine-tune ``model`` with the decorrelation regularizer; measure before and after.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        Built; not modified (a copy is trained). A path is loaded with
        :func:`analysis.load_model` (safe mode unless ``unsafe``) with its compiled settings,
        and the loss it was saved with is used when neither ``loss`` nor ``compiled_loss`` is given.
    dataset : Dataset, str or os.PathLike
        Training data with a held-out split: a dataset already checked against the model
        (:func:`analysis.data_checks.check_data_against_model`), or a data specification loaded
        for it (seeded with ``seed``).
    strength : float, default=DEFAULT_STRENGTH
        :class:`DecorrelationRegularizer` strength.
    epochs : int, default=10
        Total epochs, counting those of a resumed run.
    layers : list of str, default=None
        Layers to regularize; default every hidden layer with a supported kernel.
    batch_size : int, default=32
        Global batch size (split across replicas).
    learning_rate : float, default=1e-3
        Adam learning rate.
    validation_split : float, default=0.1
        Share of the training split held out (seeded) for the ``val_*`` curves.
    loss : str, default=None
        A :data:`LOSSES` name; overrides ``compiled_loss`` and inference.
    compiled_loss : keras loss or str, default=None
        The loss the model was saved with, used when ``loss`` is None.
    work_dir : str, default=None
        Folder for the per-epoch backup and log; required for ``resume``.
    resume : bool, default=False
        Continue from the backup in ``work_dir``.
    keep_regularizer : bool, default=False
        Leave the regularizer on the returned model (it is then saved with it).
    threshold : float, default=0.9
        Pearson r of a redundant pair.
    seed : int, default=0
    callbacks : sequence of keras.callbacks.Callback
        Run after the built-in ones (after the epoch's backup is written).
    verbose : int, default=0
        Passed to ``fit``.
    label : str, default=None
        What error messages call the run (``weightkit retrain`` passes its output path);
        ``model '<name>'`` when None.
    unsafe : bool, default=False
        Load a model path with its embedded code.

    Returns
    -------
    trained : keras.Model
    result : RetrainResult

    Raises
    ------
    WeightkitError
        When training diverged (a weight became NaN or Inf); the backup in ``work_dir``, which
        diverged too, is removed.
    """
    loaded = as_model(model, unsafe=unsafe, compile=True)
    model = loaded.model
    if compiled_loss is None and loss is None and loaded.path is not None and loaded.compiled:
        compiled_loss = getattr(model, "loss", None)
    dataset = as_dataset(dataset, model, seed=seed, what="dataset")
    label = f"model {model.name!r}" if label is None else label
    strategy, strategy_name = choose_strategy()
    keras.utils.set_random_seed(seed)
    notes = []
    work, note = _copy_into(model, strategy)
    if note:
        notes.append(note)

    metric, before_value = evaluate_task(work, dataset.x_test, dataset.y_test, dataset.task)
    if loss is None and compiled_loss is not None:
        loss_object = compiled_loss
        loss_name = (compiled_loss if isinstance(compiled_loss, str) else
                     getattr(compiled_loss, "name", type(compiled_loss).__name__)) + " (compiled with the model)"
    else:
        loss_object, loss_name = infer_loss(work, dataset, loss)

    with strategy.scope():
        kernels = attach_decorrelation(work, strength, layers=layers)
        names = list(dict.fromkeys(k.name for k in kernels))
        work.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_object,
                     metrics=["mae" if dataset.task == "regression" else "accuracy"])
    before_layers = redundancy_of(work, names, threshold)

    x_train, y_train, validation = _validation_split(dataset, validation_split, seed)
    history_path = None
    fit_callbacks = [RedundancyMonitor(names, threshold)]
    if work_dir is not None:
        if not resume and os.path.isdir(work_dir):
            shutil.rmtree(work_dir)  # a fresh run never picks up an old backup
        os.makedirs(work_dir, exist_ok=True)
        history_path = os.path.join(work_dir, HISTORY_FILE)
        fit_callbacks.append(keras.callbacks.CSVLogger(history_path, append=True))
        fit_callbacks.append(keras.callbacks.BackupAndRestore(work_dir, delete_checkpoint=False,
                                                              double_checkpoint=True))
    elif resume:
        raise ValueError("resume=True needs a work_dir holding the backup")
    fit_callbacks.extend(callbacks)

    history = work.fit(x_train, y_train, validation_data=validation, epochs=epochs, batch_size=batch_size,
                       shuffle=True, callbacks=fit_callbacks, verbose=verbose)
    if not all(np.isfinite(weight).all() for weight in work.get_weights()):
        if work_dir is not None:
            shutil.rmtree(work_dir, ignore_errors=True)  # its backup diverged too: nothing to resume
        raise WeightkitError(f"{label}: training diverged (the weights became NaN or Inf), so nothing was written; "
                             f"lower --learning-rate (now {learning_rate:g}) or --strength (now {strength:g}).")
    initial_epoch = int(getattr(work, "_initial_epoch", 0) or 0)
    full_history = _read_history(history_path) if history_path else {}
    if not full_history:
        full_history = {key: [float(v) for v in values] for key, values in history.history.items()}
        full_history["epoch"] = list(range(1, len(history.epoch) + 1))

    if not keep_regularizer:
        detach_decorrelation(kernels)
    _, after_value = evaluate_task(work, dataset.x_test, dataset.y_test, dataset.task)
    after_layers = redundancy_of(work, names, threshold)
    for key in list(full_history):
        if key.startswith("redundancy/"):
            entry, statistic = key[len("redundancy/"):].rsplit("/", 1)
            full_history[key] = [float(before_layers[entry][statistic])] + full_history[key]
    return work, RetrainResult(
        loss=loss_name, metric=metric, strength=float(strength), layers=names, epochs=int(epochs),
        initial_epoch=initial_epoch, strategy=strategy_name, replicas=int(strategy.num_replicas_in_sync),
        threshold=float(threshold),
        before={metric: before_value, "layers": before_layers},
        after={metric: after_value, "layers": after_layers},
        history=full_history, notes=notes,
    )
