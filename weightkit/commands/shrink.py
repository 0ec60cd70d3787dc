"""``weightkit shrink``: the smallest model within an accuracy budget (merge, distil, quantize), in one command."""

import os

import click

from weightkit._common import (
    debug_option,
    force_option,
    load_model_or_exit,
    model_argument,
    note,
    progress_lines,
    quiet_option,
    stdout_console,
    unsafe_option,
)
from weightkit._options import SEED, Real, Whole

#: Mirrors weightkit.compress.shrink.DEFAULT_MODES (not imported here: that would load TensorFlow on --help).
_MODES = "float32,dynamic,float16,int8,int8-io"
#: Mirrors weightkit.compress.shrink.checkpoint.STATE: the checkpoint file that holds the finished stages.
_STATE = "state.json"


def work_folder(output):
    """The checkpoint folder of a shrink writing ``output``: hidden, beside it."""
    directory, name = os.path.split(os.path.abspath(output.rstrip(os.sep)))
    return os.path.join(directory, f".{name}.shrink")


@click.command()
@model_argument
@click.option("--data", "data", required=True, metavar="DATA",
              help="Data with labels of the model's first output (classes, or regression targets; per sample or "
                   "per pixel/step): FILE.npz, FILE.csv, an image folder, or sklearn:NAME. Its training split "
                   "calibrates the merges and the fine-tune; its held-out split is cut into validation (every "
                   "choice) and test (only scored).")
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=str),
              metavar="DIR", help="Folder for model.tflite, model.keras, shrink.json, frontier.json and frontier.png.")
@click.option("--max-drop", type=Real(min=0.0), default=1.0, show_default=True,
              help="What the exported model may lose against MODEL on the validation split: accuracy points for "
                   "a classifier (per pixel or step for per-element classes), MAE added for a regression.")
@click.option("--target", type=click.Choice(["size", "params", "latency"]), default="size", show_default=True,
              help="Remove most parameters (size, params) or multiply-adds (latency; exports the fastest mode).")
@click.option("--fine-tune-epochs", type=Whole(min=0), default=30, show_default=True,
              help="Most epochs of the distillation fine-tune after merging (early-stopped); 0: none.")
@click.option("--modes", default=_MODES, show_default=True, metavar="LIST",
              help="Quantization modes the export is chosen from.")
@click.option("--target-column", "target_column", default=None, metavar="COLUMN",
              help="CSV label column (default: the last).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the splits, merges and fine-tune.")
@click.option("--no-stream", "no_stream", is_flag=True,
              help="Leave the residual streams of pre-norm transformers whole (by default each is turned to its "
                   "principal directions and cut to the fewest within half the merge budget, then fine-tuned).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last finished stage.")
@force_option
@unsafe_option
@quiet_option
@debug_option
def shrink(model, data, output, max_drop, target, fine_tune_epochs, modes, target_column, seed, no_stream, resume,
           force, unsafe):
    """Find the smallest model within --max-drop of MODEL (accuracy points, or MAE for a regression; any number
    of inputs and outputs, the budget on the first): per-layer merge sensitivity, an
    allocation of removals, a distillation fine-tune, then the smallest quantization mode; every candidate
    goes on DIR/frontier.png. A pre-norm transformer's residual stream is sliced first (SliceGPT)."""
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.files.io import check_output
    from weightkit.analysis.files.work_folder import WorkFolder

    checkpoints = WorkFolder.beside(output, "shrink")
    check_output(output, force=True, directory=True, inputs=(model, data))  # its folder, before the lock goes there
    checkpoints.check(inputs=(model, data))
    with checkpoints.lock():  # one run per output: a second one would take the first one's checkpoints
        if checkpoints.interrupted() and not resume and not force:
            raise WeightkitError(f"{output}: an interrupted run left its checkpoints in {checkpoints.path}; pass "
                                 "--resume to continue it or --force to start over.")
        check_output(output, force=force, directory=True, inputs=(model, data))
        from weightkit.compress.quantize import parse_modes  # TensorFlow: after the paths are checked

        chosen_modes = parse_modes(modes)
        resuming = resume and checkpoints.holds(_STATE)
        if resume and not resuming:
            note(f"--resume: no checkpoint in {checkpoints.path}; starting from the first stage")
        try:
            _shrink(model, data, output, checkpoints.path, max_drop, target, fine_tune_epochs, chosen_modes,
                    target_column, seed, resume, force, unsafe, stream=not no_stream)
        except Exception as error:
            # A refusal or a failure: a rerun with --resume would meet it again, so nothing is kept; only an
            # interrupted run (KeyboardInterrupt) keeps its finished stages, and a --resume refused for its own
            # reasons (other options, an unreadable state) keeps them for a rerun that puts that right.
            if not (resuming and isinstance(error, WeightkitError) and str(error).startswith("--resume:")):
                checkpoints.remove(strict=False)
            raise
        checkpoints.remove(strict=False)


def _shrink(model, data, output, work, max_drop, target, fine_tune_epochs, chosen_modes, target_column, seed, resume,
            force, unsafe, stream=True):
    loaded = load_model_or_exit(model, unsafe=unsafe, compile=False, finite=True)
    from weightkit.analysis.data.checks import load_data_for_model
    from weightkit.analysis.files.io import atomic_directory, atomic_write_bytes, atomic_write_json
    from weightkit.compress.shrink import shrink_model, split_for_shrink
    from weightkit.console.shrink import print_shrink_result
    from weightkit.reports.shrink_plot import plot_frontier

    dataset = load_data_for_model(data, loaded.model, target=target_column, seed=seed)
    sizes = split_for_shrink(dataset, seed=seed).sizes()  # bad data fails here, before any work
    note(f"{data}: {sizes['fine_tune']} training samples calibrate the merges ({sizes['calibration']}) and fine-tune; "
         f"{sizes['validation']} validate every choice, {sizes['test']} others are only scored")

    def stage(name, seconds, resumed):
        note(f"stage {name}: {'read from the checkpoint' if resumed else f'done in {seconds:.1f} s'}")

    try:
        with progress_lines("shrinking") as progress:
            outcome = shrink_model(loaded.model, dataset, max_drop=max_drop, target=target,
                                   fine_tune_epochs=fine_tune_epochs, modes=chosen_modes, seed=seed, work_dir=work,
                                   resume=resume, progress=progress, on_stage=stage, stream=stream)
    except KeyboardInterrupt:
        note(f"interrupted; finished stages are kept in {work}: rerun with --resume to continue")
        raise
    result = outcome.result
    with atomic_directory(output, force=force) as folder:
        atomic_write_bytes(os.path.join(folder, "model.tflite"), outcome.tflite)
        outcome.model.save(os.path.join(folder, "model.keras"))
        atomic_write_json(os.path.join(folder, "shrink.json"), {"input": model, "data": data, **result.to_dict()})
        atomic_write_json(os.path.join(folder, "frontier.json"), result.frontier())
        plot_frontier(result.frontier(), os.path.join(folder, "frontier.png"))
    for text in print_shrink_result(result, stdout_console()):
        note(text)
    stdout_console().print(f"wrote {os.path.join(output, 'model.tflite')}, model.keras, shrink.json, frontier.json "
                           "and frontier.png")
