"""The comparison as a small dataclass tree; ``to_dict()`` gives ``comparison.json``."""

import math
from dataclasses import dataclass, field

from weightkit.compress.quantize.compare import DROP_BASES

__all__ = ["ReferenceResult", "ModeResult", "ExportChoice", "QuantizationReport"]


def _clean(value):
    """JSON-safe: NaN and infinities become None, numpy scalars become Python numbers."""
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {key: _clean(v) for key, v in value.items()}
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class ReferenceResult:
    """The float model the TFLite models are compared with (the reference row).

    Attributes
    ----------
    name : str
    kind : {"Keras", "SavedModel"}
    bytes : int
        Its size on disk.
    accuracy, mae : float or None
        On the test split (accuracy for classification, MAE for regression); None without data.
    latency_ms, throughput : float or None
        Median milliseconds per sample at batch 1; samples per second at batch 64.
    """

    name: str
    kind: str
    bytes: int
    accuracy: float = None
    mae: float = None
    latency_ms: float = None
    throughput: float = None

    def to_dict(self):
        return {"name": self.name, "kind": self.kind, "bytes": int(self.bytes), "accuracy": _clean(self.accuracy),
                "mae": _clean(self.mae), "latency_ms": _clean(self.latency_ms),
                "throughput": _clean(self.throughput)}


@dataclass
class ModeResult:
    """One quantization mode: converted and measured, or failed with its reason.

    Attributes
    ----------
    mode : str
    status : {"ok", "failed"}
    error : str or None
    path : str or None
        Where its ``.tflite`` was written.
    bytes : int or None
    size_ratio : float or None
        ``bytes`` / the float32 TFLite model's bytes (None when float32 was not converted).
    accuracy, mae : float or None
    agreement : float or None
        See :mod:`weightkit.compress.quantize.compare` for its meaning per output kind.
    max_abs_diff, mean_abs_diff : float or None
        |TFLite output − reference output| over every output value.
    per_class_accuracy_change : list of float or None
        Accuracy within each true class minus the reference's (None for a class absent from the
        test split); classification with data only.
    drop : float or None
        In the report's ``drop_basis`` unit; positive = worse than the reference.
    latency_ms, throughput : float or None
    converter : str or None
        ``"saved_model"`` or ``"keras"``.
    outputs : dict or None
        A model with several outputs: output name -> ``{"agreement", "max_abs_diff"}`` (and
        ``accuracy`` or ``mae`` where the output has labels); the other fields are the first
        output's.
    """

    mode: str
    status: str
    error: str = None
    path: str = None
    bytes: int = None
    size_ratio: float = None
    accuracy: float = None
    mae: float = None
    agreement: float = None
    max_abs_diff: float = None
    mean_abs_diff: float = None
    per_class_accuracy_change: list = None
    drop: float = None
    latency_ms: float = None
    throughput: float = None
    converter: str = None
    outputs: dict = None

    @property
    def ok(self):
        return self.status == "ok"

    def to_dict(self):
        return {"mode": self.mode, "status": self.status, "error": self.error, "path": self.path,
                "bytes": None if self.bytes is None else int(self.bytes), "size_ratio": _clean(self.size_ratio),
                "accuracy": _clean(self.accuracy), "mae": _clean(self.mae), "agreement": _clean(self.agreement),
                "max_abs_diff": _clean(self.max_abs_diff), "mean_abs_diff": _clean(self.mean_abs_diff),
                "per_class_accuracy_change": _clean(self.per_class_accuracy_change), "drop": _clean(self.drop),
                "latency_ms": _clean(self.latency_ms), "throughput": _clean(self.throughput),
                "converter": self.converter, **({"outputs": _clean(self.outputs)} if self.outputs else {})}


@dataclass
class ExportChoice:
    """Which mode became ``model.tflite`` and why."""

    mode: str
    path: str
    reason: str

    def to_dict(self):
        return {"mode": self.mode, "path": self.path, "reason": self.reason}


@dataclass
class QuantizationReport:
    """Everything ``weightkit quantize`` measured.

    Attributes
    ----------
    model : str
    data : str or None
        The ``--data`` specification, None for random inputs.
    evaluation : str
        What the rows were measured on, in words (test split or random inputs).
    n_samples : int
        Samples the outputs were compared on.
    output_kind : {"multiclass", "binary", "regression"}
    drop_basis : {"accuracy", "mae", "agreement"}
    max_drop : float
    reference : ReferenceResult
    modes : list of ModeResult
    exported : ExportChoice or None
    notes : list of str
    sensitivity : SensitivityReport or None
        Per-layer sensitivity (``--sensitivity`` / ``--mixed``), written apart as ``sensitivity.json``.
    """

    model: str
    data: str
    evaluation: str
    n_samples: int
    output_kind: str
    drop_basis: str
    max_drop: float
    reference: ReferenceResult
    modes: list = field(default_factory=list)
    exported: ExportChoice = None
    notes: list = field(default_factory=list)
    sensitivity: object = None  # a SensitivityReport with --sensitivity; written as sensitivity.json

    def mode(self, name):
        """The :class:`ModeResult` of mode ``name``."""
        for row in self.modes:
            if row.mode == name:
                return row
        raise KeyError(name)

    def to_dict(self):
        return {"model": self.model, "data": self.data, "evaluation": self.evaluation,
                "n_samples": int(self.n_samples), "output_kind": self.output_kind,
                "drop_basis": self.drop_basis, "drop_definition": DROP_BASES[self.drop_basis],
                "max_drop": _clean(self.max_drop), "reference": self.reference.to_dict(),
                "modes": [row.to_dict() for row in self.modes],
                "exported": self.exported.to_dict() if self.exported else None, "notes": list(self.notes)}
