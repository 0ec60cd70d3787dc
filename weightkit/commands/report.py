"""``weightkit report``: a self-contained HTML report with heatmaps of each layer's redundancy."""

import os

import click

from weightkit._common import (
    bias_option,
    debug_option,
    force_option,
    load_model_or_exit,
    metric_option,
    model_argument,
    progress_reporter,
    quiet_option,
    threshold_option,
    unsafe_option,
)
from weightkit.commands._activations import data_option, load_dataset, samples_option
from weightkit.commands.analyze import _names, stored_model_or_exit


@click.command()
@model_argument
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Report folder to write (index.html, analysis.json, figures/).")
@metric_option
@threshold_option
@click.option("--layers", multiple=True, metavar="NAME",
              help="Report only these layers or parts (lstm/forget); repeat it or separate names with commas.")
@bias_option
@data_option("Also show each layer's activation heatmaps beside the weight ones (same neuron order) and list its "
             "dead neurons, from DATA's training split (.npz, .csv, image folder or sklearn:NAME).")
@samples_option
@force_option
@unsafe_option
@quiet_option
@debug_option
def report(model, output, metric, threshold, layers, include_bias, data, samples, force, unsafe):
    """Write an HTML report of the redundant neurons of MODEL (.keras or .h5) into a folder.

    Open OUTPUT/index.html in a browser: it needs no network. OUTPUT/analysis.json holds the
    same document as `weightkit analyze --json`.
    """
    from weightkit.analysis.files.io import check_output

    check_output(output, force=force, directory=True, inputs=(model, data))
    from weightkit.reports.report import write_report  # matplotlib and scipy: after the checks

    loaded = load_model_or_exit(model, unsafe=unsafe, compile=False) if data else stored_model_or_exit(model, unsafe)
    dataset = load_dataset(data, loaded.model) if data else None
    with progress_reporter("analyzing and drawing") as progress:
        result = write_report(loaded.model, output, metric=metric, threshold=threshold,
                              layers=_names(layers), include_bias=include_bias, force=force,
                              progress=progress, path=model, notes=loaded.notes, data=dataset, samples=samples)
    figures = len(os.listdir(os.path.join(output, "figures")))
    click.echo(f"wrote {os.path.join(output, 'index.html')}: {len(result.layers)} layer entries, "
               f"{len(result.skipped)} skipped, {figures} figures; {result.removable:,} removable neurons")
