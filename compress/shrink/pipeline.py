"""``shrink_model``: the smallest model within a budget, in stages that resume.

1. ``original``, 2. ``stream`` (:mod:`.stream_stage`), 3. ``sensitivity``, 4. ``search`` (:mod:`.stages`),
5. ``quantize`` (:mod:`.export`),
over one :class:`~weightkit.compress.shrink.run.ShrinkRun` built from the checked
:class:`~weightkit.compress.shrink.options.ShrinkOptions`.

Every choice reads the validation split; the test split is scored for the report only
(:mod:`.splits`). The budget is in the first output's unit (:class:`~weightkit.compress.shrink.judge.Judge`):
accuracy points for a classifier (per element for a per-pixel or per-step output), MAE added for a
regression; a model may have several inputs and outputs (every output adds to the error that
ranks the layers).
"""

from weightkit.analysis.data.inputs import as_dataset, as_model
from weightkit.compress.shrink.export import quantize_stage
from weightkit.compress.shrink.options import DEFAULT_MODES, ShrinkOptions
from weightkit.compress.shrink.run import ShrinkRun
from weightkit.compress.shrink.budget import BUDGET_FRACTIONS, BUDGET_PROBES
from weightkit.compress.shrink.splits import split_for_shrink
from weightkit.compress.shrink.stages import original_stage, search_stage, sensitivity_stage
from weightkit.compress.shrink.stream_stage import stream_stage

__all__ = ["DEFAULT_MODES", "ShrinkOutcome", "shrink_model"]


class ShrinkOutcome:
    """The products of a run: ``model`` (the merged float Keras model), ``tflite`` (the exported
    bytes), ``contents`` (every mode's bytes), ``quantization`` (the QuantizationReport) and ``result``."""

    def __init__(self, model, tflite, contents, quantization, result):
        self.model, self.tflite, self.contents = model, tflite, contents
        self.quantization, self.result = quantization, result


def shrink_model(model, dataset, *, max_drop=1.0, target="size", fine_tune_epochs=30, fine_tune=None,
                 modes=DEFAULT_MODES, fractions=BUDGET_FRACTIONS, quantize_reserve=0.25, max_probes=BUDGET_PROBES,
                 temperature=4.0, alpha=0.7, calibration_samples=200, seed=0, work_dir=None, resume=False,
                 progress=None, on_stage=None, unsafe=False, stream=True):
    """Merge, fine-tune and quantize a model to the smallest one within ``max_drop`` of the original.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        Any number of inputs and outputs; the budget reads the first output. Not modified.
    dataset : Dataset, str or os.PathLike
        Data fitted to the model (or a data specification) with labels of the first output: its
        training split calibrates the merges and is the fine-tune's, its held-out split is cut into
        validation (every choice) and test (only reported)
        (:func:`weightkit.compress.shrink.splits.split_for_shrink`).
    max_drop : float, default=1.0
        What the export may lose against the original on the validation split: accuracy points
        for a classifier (per element for per-pixel or per-step classes), MAE added for a
        regression (``result.unit`` says which).
    target : {"size", "params", "latency"}, default="size"
        What the allocation removes most of (:data:`weightkit.compress.shrink.costs.TARGETS`); ``latency``
        also exports the fastest mode within the budget instead of the smallest.
    fine_tune_epochs : int, default=30
        Most epochs of the distillation fine-tune (early-stopped on validation); 0: none. Only a
        model with one class-score output ``(batch, n_classes)`` is fine-tuned (a note says so).
    fine_tune : bool, default=None
        None: fine-tune a merge whose validation drop exceeds half the budget; True: always;
        False: never.
    modes : sequence of str, default=DEFAULT_MODES
    fractions : sequence of float, default=BUDGET_FRACTIONS
        Fractions of each layer tried by the sensitivity stage (``merge --max-drop``'s).
    quantize_reserve : float, default=0.25
        Share of the budget kept for quantization: merging may spend the rest.
    max_probes : int, default=BUDGET_PROBES
        Allocations the search merges (and fine-tunes) at most (``merge --max-drop``'s).
    temperature, alpha : float, default=4.0, 0.7
        See :func:`weightkit.compress.shrink.distill.distill`.
    calibration_samples : int, default=200
        Representative dataset of the integer modes (from the calibration inputs).
    seed : int, default=0
    work_dir : str, default=None
        Folder for the stage checkpoints; required for ``resume``.
    resume : bool, default=False
    progress : callable, default=None
        ``progress(done, total, what)``.
    on_stage : callable, default=None
        ``on_stage(stage, seconds, resumed)`` when a stage is finished (or read from the checkpoint).
    unsafe : bool, default=False
    stream : bool, default=True
        Slice each residual stream that can be (a pre-norm transformer's) to the fewest principal directions
        within half the merge budget before merging (:mod:`weightkit.compress.shrink.stream_stage`).

    Returns
    -------
    ShrinkOutcome
    """
    options = ShrinkOptions(max_drop=max_drop, target=target, fine_tune_epochs=fine_tune_epochs,
                            fine_tune=fine_tune, modes=modes, fractions=fractions, quantize_reserve=quantize_reserve,
                            max_probes=max_probes, temperature=temperature, alpha=alpha,
                            calibration_samples=calibration_samples, seed=seed, work_dir=work_dir, resume=resume,
                            progress=progress, on_stage=on_stage, unsafe=unsafe, stream=stream)
    loaded = as_model(model, unsafe=unsafe)
    dataset = as_dataset(dataset, loaded.model, seed=options.seed)
    run = ShrinkRun(loaded.model, split_for_shrink(dataset, seed=options.seed), options, notes=loaded.notes)
    original_stage(run)
    stream_stage(run)
    merged = search_stage(run, sensitivity_stage(run))
    contents, quantization, exported = quantize_stage(run, merged)
    return ShrinkOutcome(merged, exported, contents, quantization, run.result)
