"""The whole journey on one trained model: analyze, retrain, merge, quantize, and measure every stage.

:func:`run_journey` calls the same library functions the commands do
(:func:`weightkit.analysis.analyze` or a caller's analyzer, :func:`weightkit.compress.retrain`,
:func:`weightkit.compress.merge_neurons`, :func:`weightkit.compress.quantize_model`), writes each
stage's files into a folder, and returns a :class:`Journey`: one :class:`Stage` per model it made,
each measured the same way (parameters, file size, held-out accuracy, agreement with the original,
mean |r|, redundant groups). ``weightkit.reports.journey_page`` renders it; nothing here draws a page.

:func:`run_journey` is the list of steps; each lives in a module with one job:
:mod:`~weightkit.demo.journey_options` (the settings, resolved once into a
:class:`~weightkit.demo.journey_options.JourneyOptions`), :mod:`~weightkit.demo.journey_run`
(saving and measuring a Keras stage), :mod:`~weightkit.demo.journey_steps` (merge, retrain,
shrink) and :mod:`~weightkit.demo.journey_quantized` (the quantized stages).

The stages, in order:

``original``
    The trained model as given.
``merged``
    The original with every redundant group merged (``threshold``, default r ≥ 0.9): the groups
    ``weightkit analyze`` finds, folded into their twins.
``merged-ratio``
    The original with ``ratio`` of each layer's neurons merged away, most similar pairs first.
``retrained``
    The original fine-tuned with the decorrelation regularizer.
``retrained-merged-ratio``
    The retrained model merged at the same ratio: does decorrelating first help or hurt a hard cut?
``shrunk``
    The headline: :func:`weightkit.compress.shrink.shrink_model` on the original (per-layer merge
    sensitivity, an allocation within ``max_drop`` points, a distillation fine-tune), with its
    ``model.tflite``, ``shrink.json`` and a ``frontier.png`` on which the stages above are
    labelled points (:mod:`weightkit.demo.headline`).
``<mode>``
    The ``shrunk`` model in each quantization mode, as shrink's quantize stage converted it (the
    held-out accuracy here; shrink chose on its validation split). :func:`choose_quantize_source`
    is the rule earlier demos used to pick the quantized stage.
"""

from weightkit.analysis.errors import WeightkitError
from weightkit.demo.journey_options import DEMO_MODES, KERAS_STAGES, JourneyOptions
from weightkit.demo.journey_quantized import quantized_stages
from weightkit.demo.journey_run import Clock, JourneyRun, pooled_mean_abs_r, save_plain
from weightkit.demo.journey_steps import merge_stage, retrain_stage, shrink_stage
from weightkit.demo.stages import Journey, Stage

__all__ = [
    "DEMO_MODES",
    "KERAS_STAGES",
    "Journey",
    "JourneyOptions",
    "Stage",
    "choose_quantize_source",
    "journey_with",
    "pooled_mean_abs_r",
    "run_journey",
    "save_plain",
]


def choose_quantize_source(stages, max_drop):
    """The smallest Keras stage within ``max_drop`` accuracy points of the original.

    Parameters
    ----------
    stages : list of Stage
        The first is the original.
    max_drop : float
        In accuracy points (1.0 = one percentage point).

    Returns
    -------
    Stage
        Fewest parameters among those that qualify; the earliest on ties (the original always
        qualifies).
    """
    keras_stages = [s for s in stages if s.kind == "keras"]
    floor = keras_stages[0].accuracy - max_drop / 100.0 - 1e-12
    fits = [s for s in keras_stages if s.accuracy >= floor]
    return min(fits, key=lambda s: (s.params, keras_stages.index(s)))


def run_journey(model, dataset, directory, *, prefix="", name=None, retrain_epochs=10, strength=None, ratio=0.5,
                threshold=None, modes=DEMO_MODES, max_drop=1.0, calibration_samples=200, seed=0, analyzer=None,
                progress=None, on_stage=None, fast_shrink=False):
    """Analyze, retrain, merge and quantize a trained classifier; measure and save every stage.

    Parameters
    ----------
    model : keras.Model
        Trained; not modified.
    dataset : weightkit.analysis.data.datasets.Dataset
        Fitted to the model (:func:`weightkit.analysis.data.datasets.fit_to_model`), classification. Its training
        split retrains and calibrates, its held-out split measures every stage.
    directory : str
        An existing folder the stages are written into (``original`` at its top, the others in
        subfolders named by their key, quantized models in ``quantized/``).
    prefix : str, default=""
        The folder's path relative to the page that will link the files (``digits_mlp``).
    name : str, default=None
        File name stem of the original (``model.name`` when None).
    retrain_epochs : int, default=10
    strength : float, default=None
        Decorrelation strength (:data:`weightkit.compress.decorrelate.training.DEFAULT_STRENGTH` when None).
    ratio : float, default=0.5
        Share of each layer's neurons the ratio merges remove.
    threshold : float, default=None
        Pearson r of the groups merged in ``merged`` (0.9 when None).
    modes : sequence of str, default=DEMO_MODES
        Quantization modes.
    max_drop : float, default=1.0
        The shrink budget: accuracy points the headline model may lose.
    calibration_samples : int, default=200
        Kept for the settings record; shrink calibrates on its own calibration split.
    seed : int, default=0
    analyzer : callable, default=None
        ``analyzer(model, stage, folder) -> analysis.ModelAnalysis`` for each Keras stage, with
        ``folder`` the stage's absolute folder; it may add files to ``stage.files``. Default:
        :func:`weightkit.analysis.analyze` (no files). ``weightkit demo`` writes a report here.
    progress : callable, default=None
        ``progress(done, total, what)`` before each stage.
    on_stage : callable, default=None
        ``on_stage(stage)`` after each stage is measured.
    fast_shrink : bool, default=False
        Shrink with :data:`weightkit.demo.headline.FAST_SHRINK` instead of ``DEMO_SHRINK``.

    Returns
    -------
    Journey
    """
    if dataset.task != "classification":
        raise WeightkitError(f"{dataset.source}: the journey measures accuracy; give a classification dataset.")
    options = JourneyOptions.resolved(
        model, name=name, strength=strength, threshold=threshold, modes=modes, analyzer=analyzer, prefix=prefix,
        retrain_epochs=retrain_epochs, ratio=ratio, max_drop=max_drop, calibration_samples=calibration_samples,
        seed=seed, progress=progress, on_stage=on_stage, fast_shrink=fast_shrink)
    return journey_with(model, dataset, directory, options)


def journey_with(model, dataset, directory, options):
    """:func:`run_journey` with its settings already resolved: every step in order.

    Parameters
    ----------
    model : keras.Model
    dataset : Dataset
    directory : str
    options : JourneyOptions

    Returns
    -------
    Journey
    """
    run = JourneyRun(model, dataset, directory, options)
    run.journey.notes.append("Keras stages are saved without optimizer state, so their file sizes compare weights "
                             "and architecture alone")
    ratio, threshold = options.ratio, options.threshold
    run.step("original (analyze, report)")
    run.keras_stage("original", model, None, {}, Clock())
    run.step(f"merge redundant groups (r ≥ {threshold:g})")
    merge_stage(run, "merged", model, "original", metric="pearson", threshold=threshold)
    run.step(f"merge ratio {ratio:g}")
    merge_stage(run, "merged-ratio", model, "original", metric="pearson", ratio=ratio)
    run.step(f"retrain {options.retrain_epochs} epochs with the decorrelation regularizer")
    retrained = retrain_stage(run)
    run.step(f"merge the retrained model, ratio {ratio:g}")
    merge_stage(run, "retrained-merged-ratio", retrained, "retrained", metric="pearson", ratio=ratio)
    run.step(f"shrink within {options.max_drop:g} point(s), then quantize: {', '.join(options.modes)}")
    outcome, shrunk = shrink_stage(run)
    quantized_stages(run, outcome, shrunk)
    run.finish()
    return run.journey
