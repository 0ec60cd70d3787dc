"""What a shrink run measured: every candidate on the frontier, the stages, the chosen export.

In Python the score fields carry a classifier's names (``validation_accuracy``, ``test_accuracy``) whatever
the run's metric; the documents (:meth:`ShrinkResult.to_dict`, :meth:`ShrinkResult.frontier`) name each
by what it holds (:func:`score_names`): ``test_mae`` for a regression, ``test_agreement`` without labels,
``test_accuracy`` unchanged for a classifier with labels, beside a ``metric`` field that says which.
"""

from dataclasses import dataclass, field

__all__ = ["FLOAT_BYTES", "SCORE_FIELDS", "Candidate", "ShrinkResult", "score_names"]

#: Bytes per parameter of a float32 Keras candidate on the frontier (it has no .tflite of its own).
FLOAT_BYTES = 4

#: The fields that hold a score in the run's metric, as a classifier with labels names them.
SCORE_FIELDS = ("validation_accuracy", "test_accuracy", "float32_tflite_test_accuracy")

#: ``unit -> the word for a drop in it``: a drop of accuracy or agreement is in points, of MAE in MAE.
_DROP_WORDS = {"accuracy": "points", "agreement": "points", "mae": "mae"}


def score_names(metric, unit):
    """``{field as a classifier names it: field in the documents}`` for a run scored in ``metric``.

    Parameters
    ----------
    metric : {"accuracy", "agreement", "mae", "mae_to_original"}
        What the scores hold (:attr:`weightkit.compress.shrink.judge.Judge.metric_key`).
    unit : {"accuracy", "agreement", "mae"}
        What a drop counts (:attr:`weightkit.compress.shrink.judge.Judge.unit`).

    Returns
    -------
    dict of str to str
        Every field of :data:`SCORE_FIELDS` with ``accuracy`` replaced by ``metric``, and ``test_drop_points``
        by ``test_drop_mae`` for a regression; the identity for a classifier with labels.

    Examples
    --------
    >>> score_names("mae", "mae")["test_accuracy"], score_names("mae", "mae")["test_drop_points"]
    ('test_mae', 'test_drop_mae')
    >>> set(score_names("accuracy", "accuracy").items()) == {(k, k) for k in score_names("accuracy", "accuracy")}
    True
    """
    names = {key: key.replace("accuracy", metric) for key in SCORE_FIELDS}
    names["test_drop_points"] = f"test_drop_{_DROP_WORDS[unit]}"
    return names


def _renamed(document, names):
    """``document`` (dicts and lists, any depth) with every key in ``names`` renamed."""
    if isinstance(document, dict):
        return {names.get(key, key): _renamed(value, names) for key, value in document.items()}
    if isinstance(document, list):
        return [_renamed(value, names) for value in document]
    return document


@dataclass
class Candidate:
    """One model the search measured.

    Attributes
    ----------
    key : str
        ``original``, ``original:float32``, ``merge:3`` (the third allocation of the greedy path),
        ``merge:3+fine-tune``, ``quantize:int8``, or a stage a caller added (``demo:merged-ratio``).
    stage : {"original", "stream", "merge", "fine-tune", "quantize"} or str
    kind : {"keras", "tflite"}
    params : int
    bytes : int
        The ``.tflite`` size; for a Keras candidate ``FLOAT_BYTES`` per parameter (``estimated``).
    validation_accuracy : float
        On the validation split: what the choices read. The score in the run's
        :attr:`ShrinkResult.metric`, named for a classifier: accuracy (agreement without labels), or a
        regression's MAE; :meth:`ShrinkResult.to_dict` names it ``validation_<metric>``.
    test_accuracy : float or None
        On the test split, never read by a choice; in the same metric (``test_<metric>`` in the documents).
    agreement : float or None
        With the original, on the validation split.
    removed : dict of str to int
        Neurons removed per layer.
    within_budget : bool or None
    chosen : bool
    """

    key: str
    stage: str
    kind: str
    params: int
    bytes: int
    validation_accuracy: float
    test_accuracy: float = None
    agreement: float = None
    removed: dict = field(default_factory=dict)
    estimated: bool = False
    within_budget: bool = None
    chosen: bool = False
    title: str = ""

    def to_dict(self):
        return {"key": self.key, "stage": self.stage, "kind": self.kind, "title": self.title or self.key,
                "params": self.params, "bytes": self.bytes, "bytes_estimated": self.estimated,
                "validation_accuracy": self.validation_accuracy, "test_accuracy": self.test_accuracy,
                "agreement": self.agreement, "removed": dict(self.removed), "within_budget": self.within_budget,
                "chosen": self.chosen}


@dataclass
class ShrinkResult:
    """A whole shrink run.

    Attributes
    ----------
    model : str
    data : str
    max_drop : float
        What the export may lose against the original, on the validation split, in :attr:`unit`
        (accuracy or agreement points, or MAE added).
    target : str
    splits : dict of str to int
        Samples in the calibration, fine-tune, validation and test splits (disjoint).
    original : dict
        The original's accuracy (validation, test), parameters and float32 ``.tflite`` bytes.
    sensitivity : list of dict
        :class:`weightkit.compress.shrink.sensitivity.LayerSensitivity` as dicts.
    path : list of dict
        The greedy allocations (:class:`weightkit.compress.shrink.allocation.Allocation`), with ``removals``.
    stream : dict
        The residual streams (:mod:`weightkit.compress.shrink.stream_stage`): ``streams`` sliced or tried, each
        with its width, the width kept and its probes; ``left``: those left alone, with the reason.
    probes : list of dict
        Each allocation the search merged: its validation accuracy before and after fine-tuning,
        whether it stayed within the merge budget.
    merged : dict
        The chosen float model: removals, parameters, accuracy, fine-tune.
    quantized : dict
        The quantization choice: mode, bytes, reason, remaining budget.
    export : dict
        ``mode``, ``bytes``, ``test_accuracy``, ``drop_points`` (test, against the original's test
        accuracy), ``ratio`` (original float32 .tflite bytes / exported bytes).
    candidates : list of Candidate
    stages : dict of str to float
        Wall seconds per stage (those resumed from a checkpoint: as first measured).
    notes : list of str
    unit : {"accuracy", "agreement", "mae"}
        What the budget and every drop count (:data:`weightkit.compress.shrink.judge.UNITS`): accuracy
        points for a classifier, MAE added for a regression.
    metric : {"accuracy", "agreement", "mae", "mae_to_original"}, default=None
        What every score holds (:attr:`weightkit.compress.shrink.judge.Judge.metric_key`); None: as
        ``unit``. In Python the scores keep a classifier's names (``validation_accuracy``,
        ``test_accuracy``, ``float32_tflite_test_accuracy``); :meth:`to_dict` and :meth:`frontier` name
        them by ``metric`` (``test_mae``) and a regression's ``test_drop_points`` ``test_drop_mae``
        (:func:`score_names`).
    """

    model: str
    data: str
    max_drop: float
    target: str
    settings: dict
    splits: dict
    original: dict = field(default_factory=dict)
    sensitivity: list = field(default_factory=list)
    path: list = field(default_factory=list)
    stream: dict = field(default_factory=dict)
    probes: list = field(default_factory=list)
    merged: dict = field(default_factory=dict)
    quantized: dict = field(default_factory=dict)
    export: dict = field(default_factory=dict)
    candidates: list = field(default_factory=list)
    stages: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    unit: str = "accuracy"
    metric: str = None

    def __post_init__(self):
        if self.metric is None:
            self.metric = self.unit

    def candidate(self, key):
        for candidate in self.candidates:
            if candidate.key == key:
                return candidate
        raise KeyError(key)

    def frontier(self):
        """The frontier document (``frontier.json``): every candidate, the chosen one marked; its scores are
        ``validation_<metric>`` and ``test_<metric>`` (:func:`score_names`)."""
        metric = self.metric
        return {"model": self.model, "data": self.data, "max_drop": self.max_drop, "target": self.target,
                "unit": self.unit, "metric": metric,
                f"{metric}_split": f"test (never used for a choice); choices read validation_{metric}",
                "candidates": _renamed([c.to_dict() for c in self.candidates], score_names(metric, self.unit))}

    def to_dict(self):
        """The whole run (``shrink.json``), every score field named by :attr:`metric` (:func:`score_names`)."""
        document = {"model": self.model, "data": self.data, "max_drop": self.max_drop, "target": self.target,
                    "unit": self.unit, "metric": self.metric, "settings": dict(self.settings),
                    "splits": dict(self.splits), "original": dict(self.original),
                    "stream": dict(self.stream), "sensitivity": list(self.sensitivity), "path": list(self.path), "probes": list(self.probes),
                    "merged": dict(self.merged), "quantized": dict(self.quantized), "export": dict(self.export),
                    "stages": dict(self.stages), "candidates": [c.to_dict() for c in self.candidates],
                    "notes": list(self.notes)}
        return _renamed(document, score_names(self.metric, self.unit))
