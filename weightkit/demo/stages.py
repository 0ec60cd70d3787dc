"""The measured stages of a demo journey: :class:`Stage` (one model) and :class:`Journey` (all of them)."""

from dataclasses import dataclass, field

__all__ = ["Journey", "Stage"]


@dataclass
class Stage:
    """One model of the journey, measured like every other.

    Attributes
    ----------
    key : str
        ``original``, ``merged``, ``merged-ratio``, ``retrained``, ``retrained-merged-ratio``,
        ``shrunk`` or a quantization mode (``int8``).
    title : str
        What it is, in words.
    kind : {"keras", "tflite"}
    source : str or None
        The key of the stage it was made from.
    folder : str
        Its folder, relative to the journey's root (forward slashes).
    path : str
        Its model file, relative to the root.
    params : int
        Parameters (for a TFLite stage: those of the Keras model it was converted from).
    bytes : int
        Size of the model file.
    accuracy : float
        On the held-out split.
    agreement : float
        Share of held-out samples on which it predicts the original's class.
    mean_abs_r : float or None
        Mean |Pearson r| over every pair of neurons within a layer, all analyzed layers pooled
        (:func:`pooled_mean_abs_r`); None for TFLite stages (not measured).
    groups, removable : int or None
        Redundant groups and removable neurons found by the analysis; None for TFLite stages.
    seconds, cpu_seconds : float
        Wall and process CPU time to make and measure it (its report included).
    files : dict of str to str
        Other files of the stage, relative to the root (``report``, ``json``, ``plot``).
    details : dict
        What the stage's step did (retrain: accuracy and mean |r| before and after; merge:
        neurons removed; quantize: the drop and output error).
    analysis : analysis.ModelAnalysis or None
        Not serialized.
    """

    key: str
    title: str
    kind: str
    source: str
    folder: str
    path: str = None
    params: int = None
    bytes: int = None
    accuracy: float = None
    agreement: float = None
    mean_abs_r: float = None
    groups: int = None
    removable: int = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    files: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    analysis: object = field(default=None, repr=False)

    def to_dict(self):
        return {"key": self.key, "title": self.title, "kind": self.kind, "source": self.source,
                "folder": self.folder, "path": self.path, "params": self.params, "bytes": self.bytes,
                "accuracy": self.accuracy, "agreement": self.agreement, "mean_abs_r": self.mean_abs_r,
                "groups": self.groups, "removable": self.removable, "seconds": round(self.seconds, 3),
                "cpu_seconds": round(self.cpu_seconds, 3), "files": dict(self.files), "details": self.details}


@dataclass
class Journey:
    """Every stage of one model's journey.

    Attributes
    ----------
    model : str
    data : str
        The dataset specification (``sklearn:digits``).
    test_samples : int
        Held-out samples every accuracy and agreement is measured on.
    settings : dict
        The options of :func:`run_journey`.
    stages : list of Stage
    quantized_from : str or None
        Key of the stage the quantization modes were converted from.
    notes : list of str
    """

    model: str
    data: str
    test_samples: int
    settings: dict
    stages: list = field(default_factory=list)
    quantized_from: str = None
    notes: list = field(default_factory=list)

    def stage(self, key):
        """The :class:`Stage` called ``key``."""
        for stage in self.stages:
            if stage.key == key:
                return stage
        raise KeyError(key)

    def to_dict(self):
        return {"model": self.model, "data": self.data, "test_samples": self.test_samples,
                "settings": dict(self.settings), "quantized_from": self.quantized_from,
                "stages": [stage.to_dict() for stage in self.stages], "notes": list(self.notes)}
