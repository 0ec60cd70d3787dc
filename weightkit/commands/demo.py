"""``weightkit demo``: the whole journey on built-in examples (scikit-learn's digits, no download)."""

import os
import time

import click

from weightkit._common import debug_option, force_option, progress_reporter, quiet_option, stdout_console
from weightkit._options import SEED, Real, Whole

#: The built-in examples: name -> (builder in weightkit.demo.examples, share of --epochs it trains, merge ratio).
#: The MLP is deliberately over-wide (half its neurons can go); the CNN's 16 and 32 filters are not.
EXAMPLES = {"mlp": ("build_wide_mlp", 1.0, 0.5), "cnn": ("build_small_cnn", 0.5, 0.25)}
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
    epochs = epochs or (_FAST["epochs"] if fast else 40)
    retrain_epochs = retrain_epochs or (_FAST["retrain_epochs"] if fast else 10)
    check_output(output, force=force, directory=True)
    from weightkit.compress.quantize import parse_modes  # TensorFlow: after the checks

    chosen_modes = parse_modes(modes or (_FAST["modes"] if fast else _FULL_MODES))

    from weightkit.analysis.files.io import atomic_directory
    from weightkit.console.journey import print_journey
    from weightkit.reports.journey_page import write_summary

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    journeys, trained = [], {}
    with atomic_directory(output, force=force) as work, progress_reporter("demo") as progress:
        for index, name in enumerate(dict.fromkeys(names)):
            builder, share, example_ratio = EXAMPLES[name]
            example_epochs = max(1, round(epochs * share))
            journey, accuracy = _run_example(builder, example_epochs, retrain_epochs, chosen_modes,
                                             ratio or example_ratio, seed, work, progress, index, len(names),
                                             fast_shrink=fast)
            trained[journey.model] = (example_epochs, accuracy)
            journeys.append(journey)
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        settings = {"epochs": {model: epochs_ for model, (epochs_, _) in trained.items()},
                    "retrain_epochs": retrain_epochs, "modes": chosen_modes,
                    "ratio": {j.model: j.settings["ratio"] for j in journeys}, "seed": seed,
                    "fast": fast}
        meta = {"data": f"scikit-learn's digits (sklearn:digits): 8×8 images, seeded 80/20 split (seed {seed})",
                "training": "; ".join(f"{model}: {e} epochs, Adam, test accuracy {a:.4f}"
                                      for model, (e, a) in trained.items()),
                "time": f"{wall:.0f} s wall, {cpu:.0f} s CPU (this process) before this page was written",
                "machine": f"{os.cpu_count()} CPU cores"}
        write_summary(journeys, work, meta=meta,
                      extra={"command": "weightkit demo", "settings": settings,
                             "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)})
    console = stdout_console()
    for journey in journeys:
        print_journey(journey, console)
    console.print(f"wrote {os.path.join(output, 'index.html')} ({time.perf_counter() - start_wall:.0f} s, "
                  f"{time.process_time() - start_cpu:.0f} s CPU); open it in a browser")


def _run_example(builder, epochs, retrain_epochs, modes, ratio, seed, work, progress, index, count, fast_shrink=False):
    """Train one example, then run the journey on it with a report per Keras stage."""
    from weightkit.analysis.data.datasets import load_data
    from weightkit.analysis.data.checks import fit_to_model
    from weightkit.reports.report import write_report
    from weightkit.demo import examples
    from weightkit.demo.journey import KERAS_STAGES, run_journey

    model = getattr(examples, builder)()
    steps = len(KERAS_STAGES) + 1  # training, then the Keras stages (the last, shrink, quantizes)

    def step(done, total, what):
        progress(index * steps + done, count * steps, what)

    dataset = fit_to_model(load_data("sklearn:digits", seed=seed), model)
    step(0, steps, f"{model.name}: training {epochs} epochs")
    clock = time.perf_counter()
    model, accuracy = examples.train_example(model, dataset, epochs=epochs, seed=seed)
    progress.note(f"{model.name}: trained {epochs} epochs in {time.perf_counter() - clock:.1f} s, "
         f"held-out accuracy {accuracy:.4f}")

    def report(stage_model, stage, folder):
        if stage.key == "shrunk":  # its page is frontier.png and shrink.json; an HTML report would cost ~5 s
            from weightkit.analysis import analyze

            return analyze(stage_model, path=stage.path, include_bias=True)  # as merge compares rows
        result = write_report(stage_model, os.path.join(folder, "report"), path=stage.path, include_bias=True)
        stage.files["report"] = f"{stage.folder}/report/index.html"
        return result

    def done(stage):
        progress.note(f"{model.name}: {stage.key}: {stage.params:,} params, {stage.bytes / 1024:.1f} KiB, accuracy "
             f"{stage.accuracy:.4f}, agreement {stage.agreement:.4f} ({stage.seconds:.1f} s)")

    folder = os.path.join(work, model.name)
    os.mkdir(folder)
    journey = run_journey(model, dataset, folder, prefix=model.name, retrain_epochs=retrain_epochs, ratio=ratio,
                          modes=modes, seed=seed, analyzer=report, on_stage=done,
                          progress=lambda d, t, what: step(1 + d, steps, what), fast_shrink=fast_shrink)
    return journey, accuracy
