"""``weightkit quantize``: every TFLite quantization mode measured against the float model."""

import os

import click

from weightkit._common import (
    debug_option,
    force_option,
    load_model_or_exit,
    model_argument,
    note,
    progress_reporter,
    quiet_option,
    stdout_console,
    unsafe_option,
)
from weightkit._options import SEED, Real, Whole

_ALL_MODES = "float32,dynamic,float16,int8,int8-io,int16x8"


def _progress():
    """A live bar on a terminal; plain log lines (a line per step, one every 10 s) when stderr is not one."""
    import sys

    if sys.stderr.isatty():
        return progress_reporter("quantizing")
    from weightkit.console.quantize_progress import LogProgress

    return LogProgress(note, interval=10.0)


@click.command()
@model_argument
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=str),
              metavar="DIR", help="Folder for the .tflite files, comparison.json and comparison.png.")
@click.option("--data", default=None, metavar="DATA",
              help="Calibration and test data: PATH.npz, PATH.csv, an image folder or sklearn:NAME.")
@click.option("--modes", default=None, metavar="LIST", show_default=False,
              help=f"Comma-separated modes [default: {_ALL_MODES}; without --data only the modes that "
                   "need no calibration data]; also dynamic-int4 and int4 (int4 weights by ai-edge-quantizer, "
                   "float or int8 activations), keras-int8, keras-int4, keras-float8 (Keras' own "
                   "quantization, .keras files), onnx (onnxruntime) and mixed.")
@click.option("--calibration-samples", type=Whole(min=1), default=200, show_default=True,
              help="Training inputs (a seeded random sample) in the representative dataset.")
@click.option("--max-drop", type=Real(min=0.0), default=1.0, show_default=True,
              help="Largest accuracy drop in points (MAE increase in %, or disagreement in points without "
                   "--data) for the automatic choice of model.tflite.")
@click.option("--export", "export", default=None, metavar="MODE",
              help="Export this mode as model.tflite instead of choosing.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the data split and samples.")
@click.option("--sensitivity", is_flag=True,
              help="Also quantize one layer at a time (--sensitivity-mode, the rest float) and write sensitivity.json "
                   "and sensitivity.png, most sensitive layer first (needs --data).")
@click.option("--sensitivity-mode", "sensitivity_mode", type=click.Choice(["int8", "int4", "int16x8"]),
              default="int8", show_default=True,
              help="Recipe of each layer in --sensitivity and of the quantized layers of --mixed: int8 weights and "
                   "activations, int4 weights (int8 activations), or int8 weights with int16 activations.")
@click.option("--mixed", is_flag=True,
              help="Also build 'mixed': the k most sensitive layers kept float, the rest quantized "
                   "(--sensitivity-mode), the smallest k within --max-drop (needs --data).")
@click.option("--verbose", is_flag=True, help="Let the TFLite converter print its logs.")
@force_option
@unsafe_option
@quiet_option
@debug_option
def quantize(model, output, data, modes, calibration_samples, max_drop, export, seed, sensitivity, sensitivity_mode,
             mixed, verbose, force, unsafe):
    """Convert MODEL (.keras, .h5 or a SavedModel folder) to TFLite in every quantization mode,
    compare each with the float model, and export the smallest one within --max-drop."""
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.files.io import atomic_directory, check_output

    check_output(output, force=force, directory=True, inputs=(model, data))  # before TensorFlow loads
    if data is None and (sensitivity or mixed):
        raise WeightkitError(f"--{'sensitivity' if sensitivity else 'mixed'}: needs calibration data to quantize "
                             "layers; pass --data DATA (training inputs).")
    export = export.strip().lower() if export is not None else None
    chosen, left_out = _chosen_modes(modes, export, data)
    from weightkit.compress.quantize import quantize_model
    from weightkit.console.quantize_table import print_comparison

    source = _load_source(model, unsafe, data)
    if left_out:  # after the inputs are checked: an error stays the only line on stderr
        note(f"no --data: running {', '.join(chosen)} only; {', '.join(left_out)} need calibration data (--data)")
    dataset = None
    if data is not None:
        from weightkit.analysis.data.checks import load_data_for_model

        view = source.keras_model if source.keras_model is not None else source.shape_view()
        dataset = load_data_for_model(data, view, seed=seed)

    with atomic_directory(output, force=force) as work:
        with _progress() as progress:
            contents, report = quantize_model(source, chosen, dataset, calibration_samples=calibration_samples,
                                              max_drop=max_drop, export=export, seed=seed, output_dir=output,
                                              verbose=verbose, progress=progress, unsafe=unsafe,
                                              sensitivity=sensitivity, mixed=mixed,
                                              sensitivity_mode=sensitivity_mode,
                                              int16x8_limit_s=None if modes is not None and "int16x8" in chosen
                                              else 60.0)
        _write_files(report, contents, work, model, sensitivity_mode)
    print_comparison(report, stdout_console())


def _chosen_modes(modes, export, data):
    """``(modes to run, modes left out)``: ``--modes`` checked, or the default less what needs absent data.

    An explicit ``--modes`` (or ``--export``) that needs calibration data without ``--data`` is
    refused; the default list drops those modes instead.
    """
    from weightkit.analysis.errors import WeightkitError
    from weightkit.compress.quantize import DATA_FREE_MODES, MODE_NAMES, MODES, parse_modes

    chosen = parse_modes(modes if modes is not None else _ALL_MODES)
    if export is not None:
        if export not in MODES:
            raise WeightkitError(f"--export {export}: unknown mode; expected one of {', '.join(MODE_NAMES)}.")
        if export not in chosen:
            raise WeightkitError(f"--export {export}: not among --modes {','.join(chosen)}; add it to --modes.")
    if data is not None:
        return chosen, []
    hint = "pass --data DATA (training inputs) or choose from " + ", ".join(DATA_FREE_MODES) + "."
    if export is not None and MODES[export].needs_data:
        raise WeightkitError(f"--export {export}: needs calibration data for the representative dataset; {hint}")
    needing = [m for m in chosen if MODES[m].needs_data]
    if needing and modes is not None:
        raise WeightkitError(
            f"--modes {','.join(needing)}: {'needs' if len(needing) == 1 else 'need'} calibration data for the "
            f"representative dataset; {hint}")
    return [m for m in chosen if m not in needing], needing


def _load_source(model, unsafe, data):
    """The model as a quantization source: a SavedModel folder, or a Keras file loaded (its notes printed)."""
    from weightkit.analysis import is_saved_model_dir
    from weightkit.compress.quantize import keras_source, saved_model_source
    from weightkit.compress.quantize.shapes import refuse_unknown

    if is_saved_model_dir(model):
        source = saved_model_source(model, unsafe=unsafe)
    else:
        loaded = load_model_or_exit(model, unsafe=unsafe, compile=False, finite=True)
        source = keras_source(loaded.model, path=model)
    if data is None:  # a variable-size input needs the data's shape to convert
        refuse_unknown(source)
    return source


def _write_files(report, contents, work, model, sensitivity_mode):
    """The modes' files, ``comparison.json``, ``comparison.png`` and, with --sensitivity, its json and plot."""
    from weightkit.compress.quantize import write_outputs
    from weightkit.reports.quantize_plot import plot_comparison
    from weightkit.reports.sensitivity_plot import plot_sensitivity

    write_outputs(report, contents, work)
    plot_comparison(report, os.path.join(work, "comparison.png"))
    if report.sensitivity is not None:
        plot_sensitivity(report.sensitivity, os.path.join(work, "sensitivity.png"),
                         title=f"{os.path.basename(model.rstrip('/'))}: per-layer {sensitivity_mode} sensitivity")
