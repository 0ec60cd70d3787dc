"""``weightkit retrain``: fine-tune with the decorrelation regularizer, show redundancy before and after."""

import json
import os

import click

from weightkit._common import (
    debug_option,
    force_option,
    load_model_or_exit,
    model_argument,
    no_space_message,
    note,
    quiet_option,
    stdout_console,
    unsafe_option,
)
from weightkit._options import SEED, Real, Whole
from weightkit.commands._retrain_files import JOURNAL, check_work_folder, finish_interrupted_outputs, work_folder

#: Mirrors weightkit.compress.decorrelate.training.DEFAULT_STRENGTH (not imported here: that would load TensorFlow on --help).
DEFAULT_STRENGTH = 1.0


def side_outputs(output):
    """``OUT.json`` and ``OUT.png`` beside ``OUT.keras``."""
    stem = os.path.splitext(output)[0]
    return stem + ".json", stem + ".png"


@click.command()
@model_argument
@click.option("--data", "data", required=True, metavar="DATA",
              help="Training data: FILE.npz, FILE.csv, an image folder, or sklearn:NAME.")
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="The retrained model (.keras); OUT.json and OUT.png are written beside it.")
@click.option("--strength", type=Real(min=0.0), default=DEFAULT_STRENGTH, show_default=True,
              help="Weight of the decorrelation penalty (mean r² over neuron pairs).")
@click.option("--epochs", type=Whole(min=1), default=10, show_default=True, help="Training epochs.")
@click.option("--layers", multiple=True, metavar="NAME",
              help="Regularize only these layers (repeatable; default every hidden Dense/Conv/RNN layer).")
@click.option("--batch-size", type=Whole(min=1), default=32, show_default=True)
@click.option("--learning-rate", type=Real(min=0.0, min_open=True), default=1e-3, show_default=True,
              help="Adam learning rate.")
@click.option("--validation-split", type=Real(min=0.0, max=1.0, max_open=True), default=0.1,
              show_default=True, help="Share of the training data held out for validation curves.")
@click.option("--loss", default=None, metavar="NAME",
              help="Loss to train with (default: the compiled one, else inferred from the output layer).")
@click.option("--target", default=None, metavar="COLUMN", help="CSV label column (default: the last).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its backup beside OUT.")
@click.option("--keep-regularizer", is_flag=True,
              help="Save the model with the regularizer attached (it then needs weightkit to load).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for the split, shuffling and init.")
@force_option
@unsafe_option
@quiet_option
@debug_option
def retrain(model, data, output, strength, epochs, layers, batch_size, learning_rate, validation_split, loss,
            target, resume, keep_regularizer, seed, force, unsafe):
    """Retrain MODEL with a decorrelation regularizer; compare redundancy and accuracy before and after."""
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.files.io import check_output
    from weightkit.output_sets import output_lock

    if not output.endswith(".keras"):
        raise WeightkitError(f"{output}: the retrained model is saved in the Keras format; give a name "
                             "ending in .keras.")
    work = work_folder(output)
    check_output(output, force=True, inputs=(model, data))  # its folder, before the lock file goes there
    check_work_folder(output, work, (model, data))
    with output_lock(output, what="retrain"):  # one run per output: they would share the work folder
        finished = finish_interrupted_outputs(output, work, resume=resume, force=force)
        if finished:
            stdout_console().print(f"--resume: the killed run had finished; completed {', '.join(finished)}")
            return
        _retrain(model, data, output, work, strength, epochs, layers, batch_size, learning_rate, validation_split,
                 loss, target, resume, keep_regularizer, seed, force, unsafe)


def _retrain(model, data, output, work, strength, epochs, layers, batch_size, learning_rate, validation_split, loss,
             target, resume, keep_regularizer, seed, force, unsafe):
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.files.io import check_output, named_if_full

    from weightkit.analysis.files.work_folder import WorkFolder

    json_path, png_path = side_outputs(output)
    folder = WorkFolder(work, "retrain", output=output)
    if folder.interrupted() and not resume and not force:
        raise WeightkitError(f"{output}: an interrupted run left its backup in {work}; pass --resume to "
                             "continue it or --force to start over.")
    for path in (output, json_path, png_path):
        check_output(path, force=force, inputs=(model, data))
    if resume and not os.path.isdir(work):
        note(f"--resume: no backup in {work}; starting from the first epoch")

    from weightkit.compress.decorrelate.training import choose_strategy

    choose_strategy()  # with TF_CONFIG, MultiWorkerMirroredStrategy must exist before any op runs
    loaded = load_model_or_exit(model, unsafe=unsafe, compile=True, finite=True)
    from weightkit.analysis.data.batches import n_samples
    from weightkit.analysis.data.checks import load_data_for_model
    from weightkit.output_sets import OutputSet
    from weightkit.compress.decorrelate.kernels import select_kernels
    from weightkit.compress.decorrelate.label_match import match_labels_to_loss
    from weightkit.compress.decorrelate.training import infer_loss
    from weightkit.compress.decorrelate.training import retrain as run_retrain
    from weightkit.console.retrain import print_retrain_result
    from weightkit.reports.retrain_plot import plot_retrain

    dataset = load_data_for_model(data, loaded.model, target=target, seed=seed)
    select_kernels(loaded.model, list(layers) or None)  # user errors before any output
    compiled_loss = getattr(loaded.model, "loss", None) if loaded.compiled else None
    chosen_loss = infer_loss(loaded.model, dataset, loss)[0] if loss is not None else compiled_loss
    if chosen_loss is not None:  # labels that do not fit it: one line now (retrain() converts the others)
        match_labels_to_loss(loaded.model, dataset, chosen_loss)
    note(f"{data}: {n_samples(dataset.x_train)} training and {n_samples(dataset.x_test)} held-out samples "
         f"({dataset.task})")

    try:
        trained, result = run_retrain(
            loaded.model, dataset, strength=strength, epochs=epochs, layers=list(layers) or None,
            batch_size=batch_size, learning_rate=learning_rate, validation_split=validation_split, loss=loss,
            compiled_loss=compiled_loss, work_dir=work, resume=resume, keep_regularizer=keep_regularizer,
            seed=seed, callbacks=[_EpochNotes(epochs)], label=output)
        document = {"model": model, "output": output, "data": data, **result.to_dict()}
        with OutputSet([output, json_path, png_path], journal=os.path.join(work, JOURNAL),
                       force=force) as outputs:
            with named_if_full(output):
                trained.save(outputs[output])
            with named_if_full(json_path), open(outputs[json_path], "w", encoding="utf-8") as handle:
                handle.write(json.dumps(document, indent=2, allow_nan=False) + "\n")
            with named_if_full(png_path):
                plot_retrain(result, outputs[png_path])
            outputs.commit()
    except KeyboardInterrupt:
        note(f"interrupted; finished epochs are kept in {work}: rerun with --resume to continue")
        raise
    except Exception as error:
        full = no_space_message(error)
        if full and os.path.isfile(os.path.join(work, "training_metadata.json")):
            raise WeightkitError(f"{full}; the finished epochs are kept in {work}: free space and rerun with "
                                 "--resume") from error
        raise
    folder.remove(strict=False)
    for text in print_retrain_result(result, stdout_console()):
        note(text)
    stdout_console().print(f"wrote {output}, {json_path} and {png_path}")


class _EpochNotes:
    """A Keras callback (built lazily: keras is imported in the command only) printing one line per epoch."""

    def __new__(cls, epochs):
        from weightkit.analysis._tf import import_keras

        keras = import_keras()

        class EpochNotes(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                # Several outputs log <output>_accuracy / <output>_mae: shown too.
                shown = sorted(logs, key=lambda k: (k.startswith("val_"), k.removeprefix("val_") != "loss", k))
                parts = [f"{key} {logs[key]:.4f}" for key in shown
                         if key.removeprefix("val_") in ("loss", "accuracy", "mae")
                         or (key.endswith(("_accuracy", "_mae")) and not key.startswith("redundancy/"))]
                mean_r = [f"{key.split('/')[1]} {value:.3f}" for key, value in logs.items()
                          if key.startswith("redundancy/") and key.endswith("/mean_abs_r")]
                note(f"epoch {epoch + 1}/{epochs}: {', '.join(parts)}; mean |r| {', '.join(mean_r)}")

        return EpochNotes()
