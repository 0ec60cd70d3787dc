"""What ``analyze``, ``report`` and ``merge`` share for ``--data``: options, the data loader call, checks.

Kept apart from the commands so each of them gains ``--data`` with a two-line change. Nothing here
imports TensorFlow at module level.
"""

import click

from weightkit._options import Whole

__all__ = ["check_merge_mode", "data_option", "load_dataset", "samples_option"]


def data_option(help_text):
    """``--data DATA`` with the given help."""
    return click.option("--data", "data", default=None, metavar="DATA", help=help_text)


def samples_option(function):
    return click.option("--samples", type=Whole(min=1), default=1000, show_default=True,
                        help="Inputs drawn (seeded) from DATA's training split and run through the model once.")(function)


def load_dataset(spec, model):
    """Load ``--data`` for the model with the loader every command uses (retrain and quantize too).

    Images are decoded at the model's input size and channels, a CSV with as many columns as the
    model has inputs is read without labels; then fitted and checked against the model
    (:func:`weightkit.analysis.data.checks.load_data_for_model`).

    Returns
    -------
    weightkit.analysis.data.datasets.Dataset
    """
    from weightkit.analysis.data.checks import load_data_for_model

    return load_data_for_model(spec, model)


def check_merge_mode(mode, data, threshold, max_error):
    """The options ``merge --mode`` allows together; one clear line when they do not fit."""
    from weightkit.analysis.errors import WeightkitError

    if mode == "data":
        if not data:
            raise WeightkitError("--mode data: needs --data DATA; its training split calibrates the merge and its "
                                 "held-out split measures accuracy.")
        if threshold is not None:
            raise WeightkitError("--threshold: only for --mode weights; with --mode data give --ratio F or "
                                 "--max-error E.")
    elif max_error is not None:
        raise WeightkitError("--max-error: only for --mode data (add --mode data --data DATA); --mode weights takes "
                             "--threshold or --ratio.")
