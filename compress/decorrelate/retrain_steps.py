"""The steps of :func:`~weightkit.compress.decorrelate.training.retrain`, each over one :class:`RetrainOptions`.

:func:`start_run` loads the model and data, copies the model into the ``tf.distribute`` strategy,
measures it, picks the loss and compiles it with the regularizer; :func:`train` fits it with a backup
that survives interruption and refuses a run that diverged; :func:`finish_run` measures again and
gathers the :class:`~weightkit.compress.decorrelate.result.RetrainResult`.
"""

import os
from dataclasses import dataclass, field

import numpy as np

from weightkit.analysis._tf import import_keras
from weightkit.analysis.data.batches import n_samples, take
from weightkit.analysis.data.inputs import as_dataset, as_model
from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.files.work_folder import WorkFolder
from weightkit.analysis.structure.graph import ModelGraph
from weightkit.compress.decorrelate.backup import AtomicBackupAndRestore
from weightkit.compress.decorrelate.evaluation import evaluate_outputs, infer_loss, redundancy_of
from weightkit.compress.decorrelate.history import HISTORY_FILE, finished_epochs, read_history
from weightkit.compress.decorrelate.kernels import attach_decorrelation, detach_decorrelation
from weightkit.compress.decorrelate.label_match import match_labels_to_loss
from weightkit.compress.decorrelate.monitor import RedundancyMonitor
from weightkit.compress.decorrelate.result import RetrainResult
from weightkit.compress.decorrelate.strategy import choose_strategy, copy_into
from weightkit.compress.decorrelate.targets import labels_per_output, metric_for_output, output_task

__all__ = ["RetrainRun", "finish_run", "start_run", "train"]


@dataclass
class RetrainRun:
    """A retrain in progress: the copy being trained and what was measured on it before training.

    Attributes
    ----------
    work : keras.Model
        The copy built under ``strategy`` (the loaded model itself when it cannot be cloned).
    label : str
        What error messages call the run.
    dataset : Dataset
        The data, its labels matched to the loss.
    names : list of str
        The regularized layers; ``kernels`` the regularized kernels.
    before_outputs : list of (str, float)
        ``(metric, value)`` per output on the held-out split; ``before_layers`` the redundancy per entry.
    """

    work: object
    dataset: object
    strategy: object
    strategy_name: str
    label: str
    notes: list = field(default_factory=list)
    loss_object: object = None
    loss_name: str = None
    kernels: list = None
    names: list = None
    before_outputs: list = None
    before_layers: dict = None


def start_run(model, dataset, options):
    """Load, copy into the strategy, measure, pick the loss and compile with the regularizer.

    Returns
    -------
    RetrainRun
    """
    loaded = as_model(model, unsafe=options.unsafe, compile=True)
    model = loaded.model
    compiled_loss = options.compiled_loss
    if compiled_loss is None and options.loss is None and loaded.path is not None and loaded.compiled:
        compiled_loss = getattr(model, "loss", None)
    dataset = as_dataset(dataset, model, seed=options.seed, what="dataset")
    strategy, strategy_name = choose_strategy()
    import_keras().utils.set_random_seed(options.seed)
    work, note = copy_into(model, strategy)
    run = RetrainRun(work, dataset, strategy, strategy_name, options.run_label(model), notes=[note] if note else [])
    if len(work.outputs) > 1:
        labels_per_output(work, dataset.y_train)  # refuses labels that do not match the outputs
    run.before_outputs = evaluate_outputs(work, dataset.x_test, dataset.y_test, dataset.task)
    _choose_loss(run, options.loss, compiled_loss)
    _compile_with_penalty(run, options)
    run.before_layers = redundancy_of(work, run.names, options.threshold)
    return run


def _choose_loss(run, loss, compiled_loss):
    """The loss given, else the one the model was compiled with, else inferred; labels matched to it."""
    if loss is None and compiled_loss is not None:
        run.loss_object = compiled_loss
        run.loss_name = (compiled_loss if isinstance(compiled_loss, str) else
                         getattr(compiled_loss, "name", type(compiled_loss).__name__)) + " (compiled with the model)"
    else:
        run.loss_object, run.loss_name = infer_loss(run.work, run.dataset, loss)
    run.dataset, label_notes = match_labels_to_loss(run.work, run.dataset, run.loss_object)  # before any backup
    run.notes.extend(label_notes)


def _compile_with_penalty(run, options):
    keras = import_keras()
    with run.strategy.scope():
        run.kernels = attach_decorrelation(run.work, options.strength, layers=options.layers)
        run.names = list(dict.fromkeys(k.name for k in run.kernels))
        run.work.compile(optimizer=keras.optimizers.Adam(options.learning_rate), loss=run.loss_object,
                         metrics=_fit_metrics(run.dataset))


def _fit_metrics(dataset):
    """One metric list per output for ``compile`` (accuracy or MAE by each output's task)."""
    ys = dataset.y_train if isinstance(dataset.y_train, (list, tuple)) else [dataset.y_train]
    metrics = [[metric_for_output(output_task(k, y, dataset.task))] for k, y in enumerate(ys)]
    return metrics[0] if len(metrics) == 1 else metrics


def train(run, options):
    """Fit ``run.work`` with the redundancy monitor, the per-epoch log and backup, and the user's callbacks.

    Returns
    -------
    history : dict of str to list of float
        Every epoch's logs, resumed runs included, ``"epoch"`` numbered from 1 (redundancy before training
        not yet prepended).

    Raises
    ------
    WeightkitError
        When training diverged (a weight became NaN or Inf); the backup, which diverged too, is removed.
    """
    x_train, y_train, validation = _validation_split(run.dataset, options.validation_split, options.seed)
    callbacks, work_folder = _callbacks(run.names, options)
    try:
        fitted = run.work.fit(x_train, y_train, validation_data=validation, epochs=options.epochs,
                              batch_size=options.batch_size, shuffle=True, callbacks=callbacks,
                              verbose=options.verbose)
    except Exception:
        if work_folder is not None and not options.resume and not finished_epochs(options.work_dir):
            work_folder.remove(strict=False)  # nothing to resume: a rerun must not claim one
        raise
    if not all(np.isfinite(weight).all() for weight in run.work.get_weights()):
        if work_folder is not None:
            work_folder.remove(strict=False)  # its backup diverged too: nothing to resume
        raise WeightkitError(options.divergence_message(run.label))
    history = read_history(os.path.join(options.work_dir, HISTORY_FILE)) if work_folder is not None else {}
    if not history:
        history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
        history["epoch"] = list(range(1, len(fitted.epoch) + 1))
    return history


def _callbacks(names, options):
    """``(callbacks, WorkFolder or None)``: the monitor, then the log and backup of ``work_dir``, then the user's."""
    keras = import_keras()
    callbacks, work_folder = [RedundancyMonitor(names, options.threshold)], None
    if options.work_dir is not None:
        work_folder = WorkFolder(options.work_dir, "retrain")
        work_folder.start(resume=options.resume)  # a fresh run never picks up an old backup; a user's files refused
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(options.work_dir, HISTORY_FILE), append=True))
        callbacks.append(AtomicBackupAndRestore(options.work_dir))
    elif options.resume:
        raise ValueError("resume=True needs a work_dir holding the backup")
    return callbacks + list(options.callbacks), work_folder


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
    val, train_rows = order[:n_val], order[n_val:]
    x, y = dataset.x_train, dataset.y_train
    return take(x, train_rows), _take_labels(y, train_rows), (take(x, val), _take_labels(y, val))


def _take_labels(y, indices):
    """Labels of one output or a list of them (one per output) at ``indices``; Keras fit takes lists."""
    return [labels[indices] for labels in y] if isinstance(y, (list, tuple)) else y[indices]


def finish_run(run, history, options):
    """Take the regularizer off (unless kept), measure again and gather the result.

    Returns
    -------
    RetrainResult
    """
    work, dataset = run.work, run.dataset
    if not options.keep_regularizer:
        detach_decorrelation(run.kernels)
    after_outputs = evaluate_outputs(work, dataset.x_test, dataset.y_test, dataset.task)
    if len(after_outputs) > 1:
        run.notes.append("held-out per output: " + "; ".join(
            f"{n} {b[0]} {b[1]:.4f} before, {a[1]:.4f} after"
            for n, b, a in zip(ModelGraph(work).output_names, run.before_outputs, after_outputs) if b is not None))
    after_layers = redundancy_of(work, run.names, options.threshold)
    for key in list(history):
        if key.startswith("redundancy/"):
            entry, statistic = key[len("redundancy/"):].rsplit("/", 1)
            history[key] = [float(run.before_layers[entry][statistic])] + history[key]
    metric, before_value = run.before_outputs[0]
    return RetrainResult(
        loss=run.loss_name, metric=metric, strength=float(options.strength), layers=run.names,
        epochs=int(options.epochs), initial_epoch=int(getattr(work, "_initial_epoch", 0) or 0),
        strategy=run.strategy_name, replicas=int(run.strategy.num_replicas_in_sync),
        threshold=float(options.threshold), before={metric: before_value, "layers": run.before_layers},
        after={metric: after_outputs[0][1], "layers": after_layers}, history=history, notes=run.notes)
