"""What a shrink run measured: every candidate on the frontier, the stages, the chosen export."""

from dataclasses import dataclass, field

__all__ = ["FLOAT_BYTES", "Candidate", "ShrinkResult"]

#: Bytes per parameter of a float32 Keras candidate on the frontier (it has no .tflite of its own).
FLOAT_BYTES = 4


@dataclass
class Candidate:
    """One model the search measured.

    Attributes
    ----------
    key : str
        ``original``, ``original:float32``, ``merge:3`` (the third allocation of the greedy path),
        ``merge:3+fine-tune``, ``quantize:int8``, or a stage a caller added (``demo:merged-ratio``).
    stage : {"original", "merge", "fine-tune", "quantize"} or str
    kind : {"keras", "tflite"}
    params : int
    bytes : int
        The ``.tflite`` size; for a Keras candidate ``FLOAT_BYTES`` per parameter (``estimated``).
    validation_accuracy : float
        On the validation split: what the choices read. The score in the run's
        :attr:`ShrinkResult.unit`, named for a classifier: accuracy (agreement without labels), or a
        regression's MAE.
    test_accuracy : float or None
        On the test split, never read by a choice; in the same unit.
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
        What the budget and every ``*_accuracy`` score count
        (:data:`weightkit.compress.shrink.judge.UNITS`): accuracy for a classifier, MAE for a regression
        (then ``validation_accuracy`` / ``test_accuracy`` hold MAEs and a drop is MAE added).
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
    probes: list = field(default_factory=list)
    merged: dict = field(default_factory=dict)
    quantized: dict = field(default_factory=dict)
    export: dict = field(default_factory=dict)
    candidates: list = field(default_factory=list)
    stages: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    unit: str = "accuracy"

    def candidate(self, key):
        for candidate in self.candidates:
            if candidate.key == key:
                return candidate
        raise KeyError(key)

    def frontier(self):
        """The frontier document (``frontier.json``): every candidate, the chosen one marked."""
        return {"model": self.model, "data": self.data, "max_drop": self.max_drop, "target": self.target,
                "unit": self.unit, "accuracy_split": "test (never used for a choice); choices read validation_accuracy",
                "candidates": [c.to_dict() for c in self.candidates]}

    def to_dict(self):
        return {"model": self.model, "data": self.data, "max_drop": self.max_drop, "target": self.target,
                "unit": self.unit, "settings": dict(self.settings), "splits": dict(self.splits),
                "original": dict(self.original),
                "sensitivity": list(self.sensitivity), "path": list(self.path), "probes": list(self.probes),
                "merged": dict(self.merged), "quantized": dict(self.quantized), "export": dict(self.export),
                "stages": dict(self.stages), "candidates": [c.to_dict() for c in self.candidates],
                "notes": list(self.notes)}
