"""Retrain a model with the decorrelation regularizer and measure redundancy before and after.

The glue between a loaded model, a :class:`weightkit.analysis.data.datasets.Dataset` and Keras' ``fit``, a short
list of steps (:mod:`.retrain_steps`) over one :class:`~.retrain_options.RetrainOptions`: choose a ``tf.distribute``
strategy and copy the model into it (:mod:`.strategy`), pick the loss and measure (:mod:`.evaluation`), attach the
regularizer, train with a backup that survives interruption (:mod:`.history` reads its log back), and report
accuracy and redundancy before and after (:class:`~.result.RetrainResult`). The command line (``weightkit
retrain``) only adds file handling around :func:`retrain`; the check that training did not diverge is here.
"""

from weightkit.analysis.files.io import OUTPUT_MARKER
from weightkit.compress.decorrelate.evaluation import evaluate_outputs, evaluate_task, infer_loss, redundancy_of
from weightkit.compress.decorrelate.history import HISTORY_FILE
from weightkit.compress.decorrelate.result import RetrainResult
from weightkit.compress.decorrelate.retrain_options import DEFAULT_STRENGTH, RetrainOptions
from weightkit.compress.decorrelate.retrain_steps import finish_run, start_run, train
from weightkit.compress.decorrelate.strategy import choose_strategy
from weightkit.compress.decorrelate.targets import LOSSES

__all__ = ["DEFAULT_STRENGTH", "HISTORY_FILE", "LOSSES", "RetrainOptions", "RetrainResult", "choose_strategy",
           "infer_loss", "evaluate_task", "evaluate_outputs", "retrain", "redundancy_of"]

#: The file that marks a work folder as retrain's own (only such a folder, or an empty one, is removed).
WORK_MARKER = OUTPUT_MARKER


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
    options = RetrainOptions(strength=strength, epochs=epochs, layers=layers, batch_size=batch_size,
                             learning_rate=learning_rate, validation_split=validation_split, loss=loss,
                             compiled_loss=compiled_loss, work_dir=work_dir, resume=resume,
                             keep_regularizer=keep_regularizer, threshold=threshold, seed=seed,
                             callbacks=tuple(callbacks), verbose=verbose, label=label, unsafe=unsafe)
    run = start_run(model, dataset, options)
    history = train(run, options)
    return run.work, finish_run(run, history, options)
