"""``weightkit fold``: layers with no nonlinearity between them, replaced by the one layer they compute."""

import os

import click

from weightkit._common import (
    debug_option,
    force_option,
    load_model_or_exit,
    model_argument,
    note,
    quiet_option,
    stdout_console,
    unsafe_option,
)
from weightkit._options import Whole
from weightkit.commands._activations import load_dataset


@click.command()
@model_argument
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="The folded model (.keras); its report goes beside it as OUT.json.")
@click.option("--approximate", is_flag=True,
              help="Also fold chains whose fold is not exact ('same'-padded convolutions: the borders change); "
                   "the report gives the output error.")
@click.option("--always", is_flag=True, help="Also fold chains whose folded layer holds more parameters.")
@click.option("--data", "data", default=None, metavar="DATA",
              help="Compare the outputs before and after on DATA's training split (.npz, .csv, image folder or "
                   "sklearn:NAME) instead of seeded random inputs.")
@click.option("--samples", type=Whole(min=1), default=256, show_default=True,
              help="Inputs the outputs are compared on.")
@force_option
@unsafe_option
@quiet_option
@debug_option
def fold(model, output, approximate, always, data, samples, force, unsafe):
    """Fold the linear chains of MODEL (Dense→Dense, conv→conv with no activation between) into single layers.

    Chains that do not fold exactly or would grow are left alone with the reason, unless
    --approximate or --always.
    """
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.files.io import atomic_path, atomic_write_json, check_output

    if not output.lower().endswith(".keras"):
        raise WeightkitError(f"-o {output}: the folded model is saved as a Keras 3 archive; give a name ending "
                             "in .keras.")
    report_path = os.path.splitext(output)[0] + ".json"
    if os.path.abspath(output) == os.path.abspath(model):
        raise WeightkitError(f"-o {output}: is the input model, which is never modified; choose another path.")
    check_output(output, force=force, inputs=(model, data))
    check_output(report_path, force=force, inputs=(model, data))
    from weightkit.compress.fold import fold_linear  # TensorFlow: after every check
    from weightkit.reports.console import print_fold_report

    loaded = load_model_or_exit(model, unsafe=unsafe, compile=False, finite=True)
    dataset = load_dataset(data, loaded.model) if data else None
    folded, report = fold_linear(loaded.model, approximate=approximate, always=always, data=dataset,
                                 samples=samples)
    report.notes.extend(loaded.notes)
    with atomic_path(output, suffix=".keras", force=force) as temporary:
        folded.save(temporary)
    document = report.to_dict()
    document["input"], document["output"] = model, output
    atomic_write_json(report_path, document, force=force)
    print_fold_report(report, stdout_console())
    note(f"wrote {output} and {report_path}")
