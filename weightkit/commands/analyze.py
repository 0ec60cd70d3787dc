"""``weightkit analyze``: which neurons of each layer duplicate each other."""

import os

import click

from weightkit._common import (
    bias_option,
    debug_option,
    load_model_or_exit,
    metric_option,
    model_argument,
    note,
    progress_reporter,
    quiet_option,
    stdout_console,
    threshold_option,
    unsafe_option,
)
from weightkit._options import Whole
from weightkit.commands._activations import data_option, load_dataset, samples_option


@click.command()
@model_argument
@metric_option
@threshold_option
@click.option("--layers", multiple=True, metavar="NAME",
              help="Analyze only these layers or parts (lstm/forget); repeat it or separate names with commas.")
@bias_option
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Also write the result as JSON to this file.")
@click.option("--force", is_flag=True, help="Replace an existing --json file.")
@click.option("--memory-budget", type=Whole(min=1), default=256, show_default=True, metavar="MIB",
              help="Working memory for one layer's MAD matrix, in MiB, beside the matrix itself.")
@data_option("Also find dead neurons and redundant groups from activations on DATA (.npz, .csv, image folder "
             "or sklearn:NAME).")
@samples_option
@unsafe_option
@quiet_option
@debug_option
def analyze(model, metric, threshold, layers, include_bias, json_path, force, memory_budget, data, samples, unsafe):
    """Find groups of redundant neurons in every layer of MODEL (.keras, .h5 or .weights.h5).

    Without --data the weights are read straight from the file: TensorFlow is not loaded and no
    code stored in the file runs (Lambda layers and custom classes are listed as skipped).
    """
    from weightkit.analysis import WeightkitError
    from weightkit.analysis.files.io import atomic_write_json, check_output

    if json_path:
        # Checked before --force can act: the input is never overwritten.
        if os.path.exists(json_path) and os.path.exists(model) and os.path.samefile(json_path, model):
            raise WeightkitError(f"--json {json_path}: is the model file itself; choose another path for the JSON.")
        check_output(json_path, force=force, inputs=(model, data))
    from weightkit.analysis import analyze  # scipy: after the checks
    from weightkit.reports.console import print_analysis

    loaded = load_model_or_exit(model, unsafe=unsafe, compile=False) if data else stored_model_or_exit(model, unsafe)
    dataset = load_dataset(data, loaded.model) if data else None
    with progress_reporter("analyzing") as progress:
        result = analyze(loaded.model, metric=metric, threshold=threshold, layers=_names(layers),
                         include_bias=include_bias, data=dataset, samples=samples,
                         memory_budget=memory_budget * 2**20, progress=progress, path=model, notes=loaded.notes)
    print_analysis(result, stdout_console())
    if dataset is not None:
        from weightkit.console.activations import print_activations

        print_activations(result, stdout_console())
    if json_path:
        atomic_write_json(json_path, result.to_dict(), force=force)


def stored_model_or_exit(path, unsafe=False):
    """The model file read as data for weight analysis (:func:`weightkit.analysis.files.stored.open_stored`), its notes printed.

    Nothing in the file runs and TensorFlow is not imported, so ``--unsafe`` changes nothing here.
    """
    from weightkit.analysis.data.inputs import as_weights_source

    if unsafe:
        note("--unsafe changes nothing for weight analysis: the file is read as data and none of its code runs.")
    loaded = as_weights_source(path)
    for text in loaded.notes:
        note(f"{path}: {text}")
    return loaded


def _names(values):
    """``--layers a --layers b,c`` -> ``["a", "b", "c"]``; None when not given."""
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    return names or None
