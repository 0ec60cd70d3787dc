"""The settings of one journey (:func:`weightkit.demo.journey.run_journey`), resolved once.

:class:`JourneyOptions` gathers the keyword arguments every step of the journey reads (the
retrain, the merges, the shrink, the callbacks), with the defaults that depend on the model or
on the library (the name, the decorrelation strength) filled in.
"""

from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["DEMO_MODES", "KERAS_STAGES", "JourneyOptions"]

#: Quantization modes of a journey unless told otherwise.
DEMO_MODES = ("float32", "dynamic", "float16", "int8")

#: The Keras stages in the order they are made, with their titles.
KERAS_STAGES = {
    "original": "original",
    "merged": "merged: redundant groups",
    "merged-ratio": "merged: ratio",
    "retrained": "retrained (decorrelation)",
    "retrained-merged-ratio": "retrained, then merged: ratio",
    "shrunk": "shrink: merged by layer sensitivity, distilled",
}


@dataclass(frozen=True)
class JourneyOptions:
    """Every setting of a journey but the model, its data and its folder.

    Attributes
    ----------
    name : str
        File name stem of the original.
    analyzer : callable
        ``analyzer(model, stage, folder) -> analysis.ModelAnalysis`` for each Keras stage.
    prefix, retrain_epochs, strength, ratio, threshold, max_drop, calibration_samples, seed, progress, on_stage, \
fast_shrink
        As in :func:`~weightkit.demo.journey.run_journey`; ``strength`` and ``threshold`` resolved to numbers.
    modes : tuple of str
        Quantization modes.
    """

    name: str
    analyzer: Callable
    prefix: str = ""
    retrain_epochs: int = 10
    strength: float = None
    ratio: float = 0.5
    threshold: float = 0.9
    modes: tuple = DEMO_MODES
    max_drop: float = 1.0
    calibration_samples: int = 200
    seed: int = 0
    progress: Optional[Callable] = None
    on_stage: Optional[Callable] = None
    fast_shrink: bool = False

    @classmethod
    def resolved(cls, model, *, name=None, strength=None, threshold=None, modes=DEMO_MODES, analyzer=None,
                 **settings):
        """The options of a journey on ``model``, each default that is None filled in.

        Parameters
        ----------
        model : keras.Model
            Names the original when ``name`` is None.
        name, strength, threshold, modes, analyzer
            As in :func:`~weightkit.demo.journey.run_journey`.
        **settings
            The other fields, by name, as given.

        Returns
        -------
        JourneyOptions
        """
        from weightkit.compress.decorrelate.training import DEFAULT_STRENGTH

        return cls(name=name or model.name, analyzer=analyzer or _default_analyzer,
                   strength=DEFAULT_STRENGTH if strength is None else float(strength),
                   threshold=0.9 if threshold is None else float(threshold), modes=tuple(modes), **settings)

    def settings(self):
        """The record of the settings in ``summary.json`` (:attr:`~weightkit.demo.stages.Journey.settings`)."""
        return {"retrain_epochs": int(self.retrain_epochs), "strength": self.strength, "ratio": float(self.ratio),
                "threshold": self.threshold, "modes": list(self.modes), "max_drop": float(self.max_drop),
                "calibration_samples": int(self.calibration_samples), "seed": int(self.seed),
                "fast_shrink": bool(self.fast_shrink)}


def _default_analyzer(model, stage, directory):
    from weightkit.analysis import analyze

    return analyze(model, path=stage.path, include_bias=True)  # rows as merge compares them (its default)
