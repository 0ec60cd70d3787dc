"""The options of one shrink run, checked once: :class:`ShrinkOptions`.

:func:`weightkit.compress.shrink.shrink_model` takes them as keywords (its public signature) and
hands this one object to every stage; :meth:`ShrinkOptions.settings` is what a resumed run must
match (:class:`weightkit.compress.shrink.checkpoint.Checkpoint`).
"""

from dataclasses import dataclass, field

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.shrink.budget import BUDGET_FRACTIONS, BUDGET_PROBES
from weightkit.compress.shrink.costs import TARGETS

__all__ = ["DEFAULT_MODES", "ShrinkOptions"]

#: Quantization modes tried unless told otherwise (int16x8 runs on slow reference kernels).
DEFAULT_MODES = ("float32", "dynamic", "float16", "int8", "int8-io")


@dataclass
class ShrinkOptions:
    """Every keyword of :func:`weightkit.compress.shrink.shrink_model` (see there for each one's meaning).

    Attributes
    ----------
    max_drop : float
        In the budget's unit: accuracy points for a classifier, MAE added for a regression
        (:data:`weightkit.compress.shrink.judge.UNITS`).
    target : {"size", "params", "latency"}
    fine_tune_epochs : int
    fine_tune : bool or None
    modes : list of str
    fractions : tuple of float
    quantize_reserve : float
    max_probes : int
    temperature, alpha : float
    calibration_samples : int
        Representative dataset of the integer quantization modes.
    seed : int
    work_dir : str or None
    resume : bool
    progress, on_stage : callable or None
    unsafe : bool
    stream : bool
        Slice the residual streams (:mod:`weightkit.compress.shrink.stream_stage`) before merging.
    """

    max_drop: float = 1.0
    target: str = "size"
    fine_tune_epochs: int = 30
    fine_tune: object = None
    modes: list = field(default_factory=lambda: list(DEFAULT_MODES))
    fractions: tuple = BUDGET_FRACTIONS
    quantize_reserve: float = 0.25
    max_probes: int = BUDGET_PROBES
    temperature: float = 4.0
    alpha: float = 0.7
    calibration_samples: int = 200
    seed: int = 0
    work_dir: object = None
    resume: bool = False
    progress: object = None
    on_stage: object = None
    unsafe: bool = False
    stream: bool = True

    def __post_init__(self):
        self.max_drop, self.quantize_reserve = float(self.max_drop), float(self.quantize_reserve)
        self.fine_tune_epochs, self.max_probes = int(self.fine_tune_epochs), int(self.max_probes)
        self.modes, self.fractions = list(self.modes), tuple(float(f) for f in self.fractions)
        self.temperature, self.alpha = float(self.temperature), float(self.alpha)
        self.calibration_samples, self.seed = int(self.calibration_samples), int(self.seed)
        if self.target not in TARGETS:
            raise WeightkitError(f"--target {self.target}: expected one of {', '.join(TARGETS)}.")
        if not self.max_drop >= 0:
            raise WeightkitError(f"--max-drop {self.max_drop}: must be at least 0 (accuracy points, or MAE for a "
                                 "regression), e.g. 1.")
        if self.fine_tune_epochs < 0:
            raise WeightkitError(f"--fine-tune-epochs {self.fine_tune_epochs}: must be 0 (no fine-tune) or more.")
        if not 0.0 <= self.quantize_reserve < 1.0:
            raise WeightkitError(f"quantize_reserve={self.quantize_reserve}: must be in [0, 1).")
        if self.resume and self.work_dir is None:
            raise WeightkitError("resume=True needs the work_dir of the interrupted run.")

    @property
    def merge_budget(self):
        """The share of ``max_drop`` merging (and fine-tuning) may spend; quantization gets the rest."""
        return self.max_drop * (1.0 - self.quantize_reserve)

    @property
    def stream_budget(self):
        """The share of the merge budget slicing the residual streams may spend (half): the merges spend the rest."""
        return self.merge_budget / 2.0

    def report(self, done, what):
        """``progress(done, n_stages, what)`` when there is a progress callback."""
        if self.progress is not None:
            from weightkit.compress.shrink.checkpoint import STAGES

            self.progress(done, len(STAGES), what)

    def reporter(self, done):
        """A callback for stage number ``done`` taking ``(what)`` or ``(done, total, what)``, or None."""
        return None if self.progress is None else (lambda *args: self.report(done, args[-1]))

    def settings(self, source, sizes):
        """The JSON settings a resumed run must match: the options that change a result, the data and its splits."""
        return {"max_drop": self.max_drop, "target": self.target, "fine_tune_epochs": self.fine_tune_epochs,
                "fine_tune": self.fine_tune, "modes": list(self.modes), "fractions": list(self.fractions),
                "quantize_reserve": self.quantize_reserve, "max_probes": self.max_probes,
                "temperature": self.temperature, "alpha": self.alpha, "calibration_samples": self.calibration_samples,
                "seed": self.seed, "stream": self.stream, "data": source, "splits": dict(sizes)}
