"""Retrain a model with the decorrelation regularizer and measure redundancy before and after.

The glue between a loaded model, a :class:`weightkit.analysis.data.datasets.Dataset` and Keras' ``fit``: choose a
``tf.distribute`` strategy, copy the model into it, pick the loss, attach the regularizer, train
with a backup that survives interruption, and report accuracy and redundancy before and after.
The command line (``weightkit retrain``) only adds file handling around :func:`retrain`; the
check that training did not diverge is here.
"""

import csv
import json
import os
from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis._tf import import_keras, import_tensorflow
from weightkit.analysis.data.batches import n_samples, take
from weightkit.analysis.data.checks import output_activations
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.analysis.data.inputs import as_dataset, as_model
from weightkit.analysis.files.io import OUTPUT_MARKER
from weightkit.analysis.files.work_folder import WorkFolder
from weightkit.analysis.rows import layer_neuron_rows
from weightkit.compress.decorrelate.backup import AtomicBackupAndRestore
from weightkit.compress.decorrelate.kernels import attach_decorrelation, detach_decorrelation
from weightkit.compress.decorrelate.label_match import match_labels_to_loss
from weightkit.compress.decorrelate.monitor import RedundancyMonitor, monitored_entries, redundancy_summary
from weightkit.compress.decorrelate.targets import (
    LOSSES,
    labels_per_output,
    loss_for_output,
    metric_for_output,
    output_activations_and_widths,
    output_metric,
    output_task,
)

__all__ = ["DEFAULT_STRENGTH", "LOSSES", "RetrainResult", "choose_strategy", "infer_loss",
           "evaluate_task", "evaluate_outputs", "retrain", "redundancy_of"]

keras = import_keras()

#: Default ``--strength``: chosen with ``benchmarks/bench_regularizer.py`` (see the README).
DEFAULT_STRENGTH = 1.0

HISTORY_FILE = "history.csv"
#: The file that marks a work folder as retrain's own (only such a folder, or an empty one, is removed).
WORK_MARKER = OUTPUT_MARKER

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


_STRATEGIES = {}


def choose_strategy():
    """The ``tf.distribute`` strategy to train under.

    ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set (a multi-machine job; refused unless
    ``WEIGHTKIT_TRY_MULTIWORKER`` is set, since Keras 3's ``fit`` fails under it), else
    ``MirroredStrategy`` over the local GPUs (or logical CPUs) when there are several, else the
    default strategy.

    Returns
    -------
    strategy : tf.distribute.Strategy
    name : str
    """
    if os.environ.get("TF_CONFIG") and not os.environ.get("WEIGHTKIT_TRY_MULTIWORKER"):
        raise WeightkitError(
            "TF_CONFIG is set, but training on several machines (MultiWorkerMirroredStrategy) fails in Keras 3's fit "
            "on per-replica values (keras-team/keras#20585; tested with two local workers); unset TF_CONFIG to "
            "train on this machine's GPUs or CPUs.")
    tf = import_tensorflow()
    if os.environ.get("TF_CONFIG"):
        # Collective ops are configured when the strategy is made, which must come before any other op
        # runs (loading a model runs some): the command makes it first, and every later call gets that one.
        if "multi_worker" not in _STRATEGIES:
            _STRATEGIES["multi_worker"] = tf.distribute.MultiWorkerMirroredStrategy()
        return _STRATEGIES["multi_worker"], "MultiWorkerMirroredStrategy"
    for kind in ("GPU", "CPU"):
        devices = tf.config.list_logical_devices(kind)
        if len(devices) > 1:
            return tf.distribute.MirroredStrategy([d.name for d in devices]), "MirroredStrategy"
        if kind == "GPU" and devices:
            break
    return tf.distribute.get_strategy(), "default"


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
    outputs = output_activations_and_widths(model)
    if len(outputs) == 1:
        (activation, width), = outputs
        return loss_for_output(model, activation, width, dataset.y_train, dataset.task, name)
    ys = labels_per_output(model, dataset.y_train)
    losses = [loss_for_output(model, activation, width, y, output_task(k, y, dataset.task), name)
              for k, ((activation, width), y) in enumerate(zip(outputs, ys))]
    return [loss for loss, _ in losses], "; ".join(description for _, description in losses)


def evaluate_task(model, x, y, task, *, batch_size=256):
    """Accuracy (classification) or mean absolute error (regression) on held-out data.

    Returns
    -------
    metric : {"accuracy", "mae"}
    value : float
    """
    return evaluate_outputs(model, x, y, task, batch_size=batch_size)[0]


def evaluate_outputs(model, x, y, task, *, batch_size=256):
    """:func:`evaluate_task` for every output: a list of ``(metric, value)``, None where an output has no labels."""
    predictions = model.predict(x, batch_size=batch_size, verbose=0)
    predictions = list(predictions) if isinstance(predictions, (list, tuple)) else [predictions]
    ys = list(y) if isinstance(y, (list, tuple)) else [y]
    return [None if labels is None else output_metric(p, labels, output_task(k, labels, task), activation)
            for k, (p, labels, activation) in enumerate(zip(predictions, ys, output_activations(model)))]


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


def _fit_metrics(model, dataset):
    """One metric list per output for ``compile`` (accuracy or MAE by each output's task)."""
    ys = dataset.y_train if isinstance(dataset.y_train, (list, tuple)) else [dataset.y_train]
    metrics = [[metric_for_output(output_task(k, y, dataset.task))] for k, y in enumerate(ys)]
    return metrics[0] if len(metrics) == 1 else metrics


def _output_names(model):
    return ModelGraph(model).output_names


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


def _finished_epochs(work_dir):
    """Epochs a backup in ``work_dir`` holds (0 when none finished: BackupAndRestore writes this file per epoch)."""
    try:
        with open(os.path.join(work_dir, "training_metadata.json")) as handle:
            return int(json.load(handle).get("epoch", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return 0


def _validation_split(dataset, fraction, seed):
    if not fraction:
        return dataset.x_train, dataset.y_train, None
    n = n_samples(dataset.x_train)
    n_val = int(round(fraction * n))
    if n_val < 1 or n_val >= n:
        raise WeightkitError(
            f"--validation-split {fraction}: leaves {n_val} of {n} training samples for validation; "
            "give a fraction that leaves at least one sample on each side (e.g. 0.1)."
        )
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:n_val], order[n_val:]
    x, y = dataset.x_train, dataset.y_train
    return take(x, train), _take_labels(y, train), (take(x, val), _take_labels(y, val))


def _take_labels(y, indices):
    """Labels of one output or a list of them (one per output) at ``indices``; Keras fit takes lists."""
    return [labels[indices] for labels in y] if isinstance(y, (list, tuple)) else y[indices]


def retrain(model, dataset, *, strength=DEFAULT_STRENGTH, epochs=10, layers=None, batch_size=32,
            learning_rate=1e-3, validation_split=0.1, loss=None, compiled_loss=None, work_dir=None,
            resume=False, keep_regularizer=False, threshold=0.9, seed=0, callbacks=(), verbose=0,
            label=None, unsafe=False):
    """Fine-tune ``model`` with the decorrelation regularizer; measure before and after.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        Built; not modified (a copy is trained). A path is loaded with
        :func:`weightkit.analysis.load_model` (safe mode unless ``unsafe``) with its compiled settings,
        and the loss it was saved with is used when neither ``loss`` nor ``compiled_loss`` is given.
    dataset : Dataset, str or os.PathLike
        Training data with a held-out split: a dataset already checked against the model
        (:func:`weightkit.analysis.data.checks.check_data_against_model`), or a data specification loaded
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

    if len(work.outputs) > 1:
        labels_per_output(work, dataset.y_train)
    before_outputs = evaluate_outputs(work, dataset.x_test, dataset.y_test, dataset.task)
    metric, before_value = before_outputs[0]
    if loss is None and compiled_loss is not None:
        loss_object = compiled_loss
        loss_name = (compiled_loss if isinstance(compiled_loss, str) else
                     getattr(compiled_loss, "name", type(compiled_loss).__name__)) + " (compiled with the model)"
    else:
        loss_object, loss_name = infer_loss(work, dataset, loss)
    dataset, label_notes = match_labels_to_loss(work, dataset, loss_object)  # before any backup exists
    notes.extend(label_notes)

    with strategy.scope():
        kernels = attach_decorrelation(work, strength, layers=layers)
        names = list(dict.fromkeys(k.name for k in kernels))
        work.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss_object,
                     metrics=_fit_metrics(work, dataset))
    before_layers = redundancy_of(work, names, threshold)

    x_train, y_train, validation = _validation_split(dataset, validation_split, seed)
    history_path = None
    fit_callbacks = [RedundancyMonitor(names, threshold)]
    if work_dir is not None:
        work_folder = WorkFolder(work_dir, "retrain")
        work_folder.start(resume=resume)  # a fresh run never picks up an old backup; a user's files are refused
        history_path = os.path.join(work_dir, HISTORY_FILE)
        fit_callbacks.append(keras.callbacks.CSVLogger(history_path, append=True))
        fit_callbacks.append(AtomicBackupAndRestore(work_dir))
    elif resume:
        raise ValueError("resume=True needs a work_dir holding the backup")
    fit_callbacks.extend(callbacks)

    try:
        history = work.fit(x_train, y_train, validation_data=validation, epochs=epochs, batch_size=batch_size,
                           shuffle=True, callbacks=fit_callbacks, verbose=verbose)
    except Exception:
        if work_dir is not None and not resume and not _finished_epochs(work_dir):
            work_folder.remove(strict=False)  # nothing to resume: a rerun must not claim one
        raise
    if not all(np.isfinite(weight).all() for weight in work.get_weights()):
        if work_dir is not None:
            work_folder.remove(strict=False)  # its backup diverged too: nothing to resume
        raise WeightkitError(f"{label}: training diverged (the weights became NaN or Inf), so nothing was written; "
                             f"lower --learning-rate (now {learning_rate:g}) or --strength (now {strength:g}).")
    initial_epoch = int(getattr(work, "_initial_epoch", 0) or 0)
    full_history = _read_history(history_path) if history_path else {}
    if not full_history:
        full_history = {key: [float(v) for v in values] for key, values in history.history.items()}
        full_history["epoch"] = list(range(1, len(history.epoch) + 1))

    if not keep_regularizer:
        detach_decorrelation(kernels)
    after_outputs = evaluate_outputs(work, dataset.x_test, dataset.y_test, dataset.task)
    after_value = after_outputs[0][1]
    if len(after_outputs) > 1:
        names_out = _output_names(work)
        notes.append("held-out per output: " + "; ".join(
            f"{n} {b[0]} {b[1]:.4f} before, {a[1]:.4f} after" for n, b, a in zip(names_out, before_outputs,
                                                                                 after_outputs) if b is not None))
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
