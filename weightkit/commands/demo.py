"""``weightkit demo``: the whole journey on built-in examples (scikit-learn's digits, no download)."""

import os
import time

import click

from weightkit._common import debug_option, force_option, progress_reporter, quiet_option, stdout_console
from weightkit._options import SEED, Real, Whole
from weightkit.demo.showcase import EXAMPLES, DemoOptions, run_examples, write_demo_summary

_FULL_MODES = "float32,dynamic,float16,int8"
_FAST = {"epochs": 10, "retrain_epochs": 3, "modes": "float32,int8"}


@click.command()
@click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=str),
              default="weightkit-demo", show_default=True, help="Folder for the demo's files (index.html first).")
@click.option("--epochs", type=Whole(min=1), default=None,
              help="Training epochs of the MLP; the CNN trains half as many. [default: 40; 10 with --fast]")
@click.option("--retrain-epochs", type=Whole(min=1), default=None,
              help="Epochs of the decorrelation retrain. [default: 10; 3 with --fast]")
@click.option("--models", default="mlp,cnn", show_default=True, metavar="LIST",
              help="Comma-separated examples to run: mlp (64-256-256-10, weight decay 3e-3), cnn (two convolutions).")
@click.option("--modes", default=None, metavar="LIST",
              help=f"Quantization modes. [default: {_FULL_MODES}; {_FAST['modes']} with --fast]")
@click.option("--ratio", type=Real(min=0.0, max=1.0, min_open=True, max_open=True), default=None,
              help="Share of each layer's neurons the ratio merges remove. [default: 0.5 for the MLP, 0.25 for "
                   "the CNN]")
@click.option("--fast", is_flag=True, help="A quick look: fewer epochs, two quantization modes, a lighter shrink.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the data split, training and samples.")
@force_option
@quiet_option
@debug_option
def demo(output, epochs, retrain_epochs, models, modes, ratio, fast, seed, force):
    """Train an over-wide MLP and a small CNN on scikit-learn's digits, then analyze, report, retrain,
    merge and quantize each, and shrink each to its smallest model within 1 accuracy point (the
    headline); OUTPUT/index.html compares every stage."""
    from weightkit.analysis.errors import WeightkitError
    from weightkit.analysis.files.io import check_output

    names = [name.strip().lower() for name in models.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXAMPLES]
    if unknown or not names:
        raise WeightkitError(f"--models {models}: unknown example {', '.join(unknown) or '(none)'}; expected some "
                             f"of {', '.join(EXAMPLES)}.")
    check_output(output, force=force, directory=True)
    from weightkit.compress.quantize import parse_modes  # TensorFlow: after the checks

    options = DemoOptions(epochs=epochs or (_FAST["epochs"] if fast else 40),
                          retrain_epochs=retrain_epochs or (_FAST["retrain_epochs"] if fast else 10),
                          modes=tuple(parse_modes(modes or (_FAST["modes"] if fast else _FULL_MODES))),
                          ratio=ratio, seed=seed, fast=fast)
    from weightkit.analysis.files.io import atomic_directory
    from weightkit.console.journey import print_journey

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    with atomic_directory(output, force=force) as work, progress_reporter("demo") as progress:
        runs = run_examples(names, options, work, progress)
        write_demo_summary(runs, options, work, time.perf_counter() - start_wall, time.process_time() - start_cpu)
    console = stdout_console()
    for run in runs:
        print_journey(run.journey, console)
    console.print(f"wrote {os.path.join(output, 'index.html')} ({time.perf_counter() - start_wall:.0f} s, "
                  f"{time.process_time() - start_cpu:.0f} s CPU); open it in a browser")
