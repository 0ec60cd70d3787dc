"""``weightkit demo``'s application: train each built-in example, run its journey, write the summary page.

:class:`DemoOptions` holds the command's settings, resolved once; :func:`run_examples` trains
each example of :data:`EXAMPLES` and runs :func:`~weightkit.demo.journey.run_journey` on it with an
HTML report per Keras stage; :func:`write_demo_summary` writes ``index.html`` and
``summary.json``. The command itself only reads its options and prints.
"""

import os
import time
from dataclasses import dataclass
from typing import Optional

__all__ = ["DemoOptions", "EXAMPLES", "ExampleRun", "run_examples", "write_demo_summary"]

#: The built-in examples: name -> (builder in weightkit.demo.examples, share of --epochs it trains, merge ratio).
#: The MLP is deliberately over-wide (half its neurons can go); the CNN's 16 and 32 filters are not.
EXAMPLES = {"mlp": ("build_wide_mlp", 1.0, 0.5), "cnn": ("build_small_cnn", 0.5, 0.25)}


@dataclass(frozen=True)
class DemoOptions:
    """The settings of one ``weightkit demo`` run, defaults resolved.

    Attributes
    ----------
    epochs : int
        Training epochs of an example whose share is 1 (the MLP).
    retrain_epochs : int
    modes : tuple of str
    ratio : float or None
        The ratio merges' share; None: each example's own (:data:`EXAMPLES`).
    seed : int
    fast : bool
        The lighter shrink (:data:`weightkit.demo.headline.FAST_SHRINK`).
    """

    epochs: int
    retrain_epochs: int
    modes: tuple
    ratio: Optional[float]
    seed: int
    fast: bool


@dataclass(frozen=True)
class ExampleRun:
    """One trained example and its journey: ``epochs`` it trained, its held-out ``accuracy``."""

    journey: object
    epochs: int
    accuracy: float


def run_examples(names, options, work, progress):
    """Train and run the journey of each example in ``names`` (duplicates run once), in order.

    Parameters
    ----------
    names : list of str
        Keys of :data:`EXAMPLES`.
    options : DemoOptions
    work : str
        The folder written into; each example gets a subfolder named after its model.
    progress : weightkit._common progress reporter
        Called as ``progress(done, total, what)``; ``progress.note(text)`` prints a line.

    Returns
    -------
    list of ExampleRun
    """
    return [_run_example(name, options, work, progress, index, len(names))
            for index, name in enumerate(dict.fromkeys(names))]


def _run_example(name, options, work, progress, index, count):
    """Train one example, then run the journey on it with a report per Keras stage."""
    from weightkit.analysis.data.checks import fit_to_model
    from weightkit.analysis.data.datasets import load_data
    from weightkit.demo import examples
    from weightkit.demo.journey import KERAS_STAGES, run_journey

    builder, share, example_ratio = EXAMPLES[name]
    epochs = max(1, round(options.epochs * share))
    model = getattr(examples, builder)()
    steps = len(KERAS_STAGES) + 1  # training, then the Keras stages (the last, shrink, quantizes)

    def step(done, total, what):
        progress(index * steps + done, count * steps, what)

    dataset = fit_to_model(load_data("sklearn:digits", seed=options.seed), model)
    step(0, steps, f"{model.name}: training {epochs} epochs")
    clock = time.perf_counter()
    model, accuracy = examples.train_example(model, dataset, epochs=epochs, seed=options.seed)
    progress.note(f"{model.name}: trained {epochs} epochs in {time.perf_counter() - clock:.1f} s, "
                  f"held-out accuracy {accuracy:.4f}")

    def done(stage):
        progress.note(f"{model.name}: {stage.key}: {stage.params:,} params, {stage.bytes / 1024:.1f} KiB, accuracy "
                      f"{stage.accuracy:.4f}, agreement {stage.agreement:.4f} ({stage.seconds:.1f} s)")

    folder = os.path.join(work, model.name)
    os.mkdir(folder)
    journey = run_journey(model, dataset, folder, prefix=model.name, retrain_epochs=options.retrain_epochs,
                          ratio=options.ratio or example_ratio, modes=list(options.modes), seed=options.seed,
                          analyzer=_report_stage, on_stage=done, progress=lambda d, t, what: step(1 + d, steps, what),
                          fast_shrink=options.fast)
    return ExampleRun(journey, epochs, accuracy)


def _report_stage(stage_model, stage, folder):
    """The journey's analyzer: an HTML report in the stage's ``report/`` folder (the shrunk stage: analysis only)."""
    from weightkit.reports.report import write_report

    if stage.key == "shrunk":  # its page is frontier.png and shrink.json; an HTML report would cost ~5 s
        from weightkit.analysis import analyze

        return analyze(stage_model, path=stage.path, include_bias=True)  # as merge compares rows
    result = write_report(stage_model, os.path.join(folder, "report"), path=stage.path, include_bias=True)
    stage.files["report"] = f"{stage.folder}/report/index.html"
    return result


def write_demo_summary(runs, options, work, wall, cpu):
    """Write ``index.html`` and ``summary.json`` for every example's journey.

    Parameters
    ----------
    runs : list of ExampleRun
    options : DemoOptions
    work : str
    wall, cpu : float
        Seconds the demo has taken so far (wall clock, this process's CPU).
    """
    from weightkit.reports.journey_page import write_summary

    trained = {run.journey.model: (run.epochs, run.accuracy) for run in runs}
    journeys = [run.journey for run in runs]
    settings = {"epochs": {model: epochs for model, (epochs, _) in trained.items()},
                "retrain_epochs": options.retrain_epochs, "modes": list(options.modes),
                "ratio": {j.model: j.settings["ratio"] for j in journeys}, "seed": options.seed, "fast": options.fast}
    meta = {"data": f"scikit-learn's digits (sklearn:digits): 8×8 images, seeded 80/20 split (seed {options.seed})",
            "training": "; ".join(f"{model}: {e} epochs, Adam, test accuracy {a:.4f}"
                                  for model, (e, a) in trained.items()),
            "time": f"{wall:.0f} s wall, {cpu:.0f} s CPU (this process) before this page was written",
            "machine": f"{os.cpu_count()} CPU cores"}
    write_summary(journeys, work, meta=meta,
                  extra={"command": "weightkit demo", "settings": settings,
                         "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1)})
