"""``weightkit merge``: a genuinely smaller model, redundant neurons folded into their twins."""

import os

import click

from weightkit.reports.merge_console import nothing_to_merge, print_groups, print_merge_report
from weightkit._common import (
    bias_option,
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
from weightkit._options import Real, Whole
from weightkit.commands._activations import check_merge_mode, load_dataset


@click.command()
@model_argument
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="The smaller model (.keras); its report goes beside it as OUT.json.")
@click.option("--metric", type=click.Choice(["pearson", "mad", "cosine"]), default="pearson", show_default=True,
              help="Similarity between neuron weight rows (cosine: uncentered, a scaled copy scores 1).")
@click.option("--threshold", type=Real(), default=None,
              help="Merge every group found at this threshold (Pearson/cosine: minimum similarity, default 0.9; "
                   "MAD: maximum fraction of the layer's median MAD, default 0.2).")
@click.option("--ratio", type=Real(), default=None,
              help="Instead remove this share of each layer's neurons, most similar pairs first (e.g. 0.5).")
@click.option("--layers", multiple=True, metavar="NAME", help="Merge only these layers (repeatable).")
@bias_option
@click.option("--twin-tolerance", type=Real(min=0.0), default=0.05, show_default=True,
              help="Activations that are not positively homogeneous (sigmoid, tanh...) merge only rows with "
                   "‖w_j − w_k‖ ≤ this × ‖w_k‖.")
@click.option("--data", "data", default=None, metavar="DATA",
              help="Measure accuracy before and after and their agreement on DATA's held-out split "
                   "(.npz, .csv, image folder or sklearn:NAME); with --mode data its training split also "
                   "calibrates the merge.")
@click.option("--mode", type=click.Choice(["weights", "data"]), default="weights", show_default=True,
              help="weights: merge neurons with similar weight rows. data: rebuild each removed neuron's activation "
                   "from the kept ones of its layer by least squares on DATA, any activation function.")
@click.option("--max-error", "max_error", type=Real(), default=None,
              help="--mode data: remove neurons while at most this fraction of each consumer's input variance is "
                   "lost on the calibration sample (default 0.001 without --ratio).")
@click.option("--refit/--no-refit", "refit", default=None,
              help="--mode data: fit each tensor the consumers read on the model merged so far, in order, rebuilding "
                   "the original consumers' inputs from the kept channels (the default: 3-10x the time of the "
                   "one-shot fit, far better on residual networks); --no-refit: the one-shot fit on the original's "
                   "activations.")
@click.option("--max-drop", "max_drop", type=Real(min=0.0), default=None, metavar="P",
              help="--mode data: instead of --ratio, the largest per-layer merge losing at most P accuracy points "
                   "(agreement points without labels, MAE for a regression) on half of DATA's held-out split; the "
                   "other half is reported.")
@click.option("--fine-tune", "fine_tune", type=Whole(min=0), default=0, metavar="EPOCHS",
              help="--mode data: after merging, distil the original into the merged model for at most EPOCHS "
                   "epochs (no labels needed), early-stopped on half of DATA's held-out split.")
@click.option("--reestimate-bn", "reestimate_bn", is_flag=True,
              help="--mode data: after merging, set the BatchNormalization statistics to the merged model's on the "
                   "calibration sample.")
@click.option("--heads", "heads", type=click.Choice(["auto", "uniform", "global"]), default="auto", show_default=True,
              help="--mode data with --ratio: uniform removes the ratio of every attention layer's heads; global "
                   "removes the ratio of all the model's heads, one at a time, where the outputs on DATA move least "
                   "(slower: a merged model for each head it tries); auto is global for several attention layers "
                   "of at most 32 heads in all, uniform otherwise.")
@click.option("--samples", type=Whole(min=1), default=None,
              help="--mode data: calibration inputs drawn (seeded) from DATA's training split [default: all of "
                   "them, up to 2,048].")
@force_option
@unsafe_option
@quiet_option
@debug_option
def merge(model, output, metric, threshold, ratio, layers, include_bias, twin_tolerance, data, mode, max_error, refit,
          max_drop, fine_tune, reestimate_bn, heads, samples, force, unsafe):
    """Merge redundant neurons of MODEL and save a smaller model to OUT (.keras).

    Each removed neuron's outgoing weights are added, scaled, to its kept twin's in the next layer:
    exact for scaled copies under ReLU/LeakyReLU/linear, twins only for other activations.
    """
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.files.io import atomic_path, atomic_write_json, check_output

    check_merge_mode(mode, data, threshold, max_error)
    asked = [name for name, value in (("--refit" if refit else "--no-refit", refit is not None),
                                      ("--reestimate-bn", reestimate_bn),
                                      ("--max-drop", max_drop is not None), ("--fine-tune", fine_tune),
                                      ("--samples", samples is not None),
                                      (f"--heads {heads}", heads == "global")) if value]
    if mode != "data" and asked:
        raise WeightkitError(f"{asked[0]}: only with --mode data, which calibrates on DATA; add --mode data "
                             "--data DATA.")
    if max_drop is not None and (ratio is not None or max_error is not None):
        raise WeightkitError(f"--max-drop and {'--ratio' if ratio is not None else '--max-error'}: give one of "
                             "them; --max-drop finds the largest merge within the budget, the others fix its size.")
    if heads == "global" and (ratio is None or max_drop is not None):
        raise WeightkitError(f"--heads {heads}: spreads --ratio over all the model's heads; give --ratio (not "
                             "--max-drop, which allocates its budget itself).")
    if not output.lower().endswith(".keras"):
        raise WeightkitError(f"-o {output}: the merged model is saved as a Keras 3 archive; give a name ending "
                             "in .keras.")
    report_path = os.path.splitext(output)[0] + ".json"
    if os.path.abspath(output) == os.path.abspath(model):
        raise WeightkitError(f"-o {output}: is the input model, which is never modified; choose another path.")
    check_output(output, force=force, inputs=(model, data))
    check_output(report_path, force=force, inputs=(model, data))
    from weightkit.compress.merge import merge_neurons  # TensorFlow: after every check

    loaded = load_model_or_exit(model, unsafe=unsafe, compile=False, finite=True)
    dataset = load_dataset(data, loaded.model) if data else None
    if mode == "data":
        options = {"max_error": max_error, "samples": samples, "refit": refit is not False,
                   "reestimate_bn": reestimate_bn}
    else:
        options = {"metric": metric, "threshold": threshold, "include_bias": include_bias,
                   "twin_tolerance": twin_tolerance}
    with progress_reporter("merging") as progress:
        if max_drop is not None or fine_tune:
            from weightkit.compress.shrink import guided_merge

            merged, report = guided_merge(loaded.model, dataset, max_drop=max_drop, fine_tune=fine_tune, ratio=ratio,
                                          layers=list(layers) or None, progress=progress,
                                          heads=heads, **options)
        else:
            merged, report = merge_neurons(loaded.model, mode, dataset if mode == "data" else None,
                                           evaluate_on=dataset, ratio=ratio, layers=list(layers) or None,
                                           heads=heads, progress=progress, **options)
    report.notes.extend(loaded.notes)
    if not report.layers:
        raise WeightkitError(nothing_to_merge(model, report))
    with atomic_path(output, suffix=".keras", force=force) as temporary:
        merged.save(temporary)
    document = report.to_dict()
    document["input"], document["output"] = model, output
    atomic_write_json(report_path, document, force=force)
    if mode == "data":
        from weightkit.console.activations import print_data_merge_report

        print_data_merge_report(report, stdout_console())
    else:
        print_merge_report(report, stdout_console())
    print_groups(report, stdout_console())
    chose_global = any(n.startswith("heads: the ratio is spread over all") for n in report.notes)
    if mode == "data" and ratio is not None and heads != "global" and not chose_global and max_drop is None \
            and not fine_tune:
        _suggest_global_heads(loaded.model, layers)
    note(f"wrote {output} and {report_path}")


def _suggest_global_heads(model, layers):
    """A note when a uniform heads merge by data had several attention layers to spread the ratio over."""
    from weightkit.compress.merge.heads import attention_targets

    targets, _ = attention_targets(model, list(layers) or None)
    if len(targets) > 1:
        note(f"--heads global would choose which heads go across the {len(targets)} attention layers by the model's "
             "outputs on DATA (slower: a merged model per candidate head); on the benchmarks' ViTs it lost less than "
             "the same share from every layer (docs: merge, attention heads)")

