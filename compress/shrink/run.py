"""What every stage of one shrink run reads: :class:`ShrinkRun`.

The original, its splits, the options, the two judges (the validation split every choice reads,
the test split only reported), the checkpoint and the result being filled in.
"""

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.shrink.checkpoint import Checkpoint
from weightkit.compress.shrink.distill import distill
from weightkit.compress.shrink.judge import Judge, model_outputs
from weightkit.compress.shrink.result import ShrinkResult

__all__ = ["ShrinkRun", "tflite_runner"]


def tflite_runner(model, content):
    """A runner of ``content`` (a ``.tflite`` of ``model``) with Keras' ``predict`` contract: several inputs and
    outputs as lists in model order."""
    from weightkit.compress.quantize import TFLiteModel, keras_source
    from weightkit.compress.quantize.signature import SignatureModel

    source = keras_source(model)
    return SignatureModel(content, source.input_names) if source.several else TFLiteModel(content)


def _check_labels(judge, model, source):
    """A regression's labels must have one target per output value (a silent broadcast would score nonsense)."""
    if judge.unit != "mae" or judge.y is None:
        return
    per_sample, wanted = judge.y.size // max(1, len(judge.y)), judge.outputs[0].size // max(1, len(judge.y))
    if per_sample != wanted:
        raise WeightkitError(f"--data {source}: {per_sample} target value(s) per sample, but model {model.name!r}'s "
                             f"first output has {wanted}; give one target per output value.")


class ShrinkRun:
    """One run's shared state (see the module docstring).

    Parameters
    ----------
    original : keras.Model
    splits : ShrinkSplits
    options : ShrinkOptions
    notes : list of str
        Notes of the model's loading, carried into the result.
    """

    def __init__(self, original, splits, options, notes=()):
        self.original, self.splits, self.options = original, splits, options
        self.judge = Judge(original, splits.x_validation, splits.first_labels("validation"), task=splits.task)
        _check_labels(self.judge, original, splits.source)
        self.test_judge = Judge(original, splits.x_test, splits.first_labels("test"), task=splits.task)
        settings = options.settings(splits.source, splits.sizes())
        self.checkpoint = Checkpoint(options.work_dir, settings, resume=options.resume)
        self.result = ShrinkResult(model=original.name, data=splits.source, max_drop=options.max_drop,
                                   target=options.target, settings=settings, splits=splits.sizes(), notes=list(notes),
                                   unit=self.judge.unit, metric=self.judge.metric_key)
        self.merged = None
        self.sliced = None  # the stream stage's model, when it sliced a stream
        self.start = original  # what the merges start from (the stream stage sets it)
        self.start_drop = 0.0  # its validation drop against the original (the stream stage sets it)

    @property
    def credit(self):
        """What a sliced stream gained on validation (its drop, when negative; else 0): never spent, so later drops
        are read against the sliced model (the merges', the export's)."""
        return min(0.0, self.start_drop)

    def score(self, model):
        """The validation Judge's scores of ``model``, its ``drop`` read past :attr:`credit`, and its test score
        (``test_accuracy``, reported only)."""
        scores = self.judge.score(model)
        return {**scores, "drop": scores["drop"] - self.credit,
                "test_accuracy": self.test_judge.metric(self.test_judge.score(model))}

    def tune(self, choose="error"):
        """``tune(student) -> (model, DistillResult)``, the distillation from the original (every output, early
        stopping on the validation Judge), keeping the epoch of least divergence from the original (``choose``:
        see :func:`~weightkit.compress.shrink.distill.distill`): the budget is then read on the same validation
        split without the upward bias of picking its best accuracy out of 30 epochs. On the width-64 ViT of seeds
        0, 1 and 2, shrink --max-drop 1 lost 0.00, 1.67 and -1.11 points on the test half this way (stream cut to
        a quarter); with the epochs of best accuracy in the merges' fine-tunes and the stream cut to an eighth,
        5.00, 2.78 and 1.11 (2026-12-07). None when the options ask for no fine-tune."""
        options = self.options
        if not options.fine_tune_epochs or options.fine_tune is False:
            return None
        splits, teacher = self.splits, []

        def tune(student):
            if not teacher:
                teacher.extend(model_outputs(self.original, splits.x_fine_tune))
            return distill(student, self.original, splits.x_fine_tune, self.judge, teacher_outputs=teacher,
                           y_train=splits.first_labels("fine_tune"), epochs=options.fine_tune_epochs,
                           temperature=options.temperature, alpha=options.alpha, seed=options.seed,
                           progress=options.reporter(3), choose=choose)

        return tune
