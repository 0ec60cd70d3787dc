"""The report of a data-aware merge: per producer layer (or coupled group), and for the whole model."""

from dataclasses import dataclass, field

from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE
from weightkit.compress.merge.reporting.report import BaseMergeReport

__all__ = ["DataMergeReport", "LayerDataMerge"]


@dataclass
class LayerDataMerge:
    """What data-aware merging did to one producer layer.

    Attributes
    ----------
    name, type : str
    tap : str
        The layer whose output the relation was fitted on.
    consumers : list of str
    neurons_before, neurons_after : int
    params_before, params_after : int
        The layer's own parameters.
    requested : int or None
        Neurons ``--ratio`` asked to remove.
    removed : list of dict
        ``{"neuron", "r2", "dead"}`` per removed neuron (original index, reconstruction R² on the
        calibration sample, constant on it).
    error : float
        Fraction of the consumers' input variance lost on the calibration sample.
    rows : int
        Calibration rows the relation was fitted on (inputs × sampled positions).
    notes : list of str
    producers, members : list of str
        For a coupled channel group: its producers and every layer the merge changes.
    """

    name: str
    type: str
    tap: str
    consumers: list
    neurons_before: int
    neurons_after: int = 0
    params_before: int = 0
    params_after: int = 0
    requested: int = None
    removed: list = field(default_factory=list)
    error: float = 0.0
    rows: int = 0
    notes: list = field(default_factory=list)
    producers: list = field(default_factory=list)
    members: list = field(default_factory=list)

    @property
    def n_removed(self):
        return self.neurons_before - self.neurons_after

    @property
    def min_r2(self):
        return min((item["r2"] for item in self.removed), default=None)

    def to_dict(self):
        return {
            **({"group": {"producers": list(self.producers), "members": list(self.members)}} if self.producers else {}),
            "name": self.name,
            "type": self.type,
            "tap": self.tap,
            "consumers": list(self.consumers),
            "neurons": {"before": self.neurons_before, "after": self.neurons_after},
            "params": {"before": self.params_before, "after": self.params_after},
            "removed": self.n_removed,
            "requested": self.requested,
            "error": self.error,
            "calibration_rows": self.rows,
            "removed_neurons": list(self.removed),
            "notes": list(self.notes),
        }


@dataclass(kw_only=True)
class DataMergeReport(BaseMergeReport):
    """A whole model's data-aware merge (:func:`merge_by_data`).

    Attributes
    ----------
    ratio, max_error : float or None
        The budget that was used (one of them).
    samples : int
        Calibration inputs.
    positions : int
        Positions sampled per input for layers with positions.
    ridge : float
    seed : int
    calibration : str or None
        Where the calibration inputs came from (e.g. ``sklearn:digits (training split)``); None
        for an array.
    layers : list of LayerDataMerge
    budget : dict or None
        ``merge --max-drop``: the ``unit`` (what ``max_drop``, ``drop`` and ``test_drop`` count:
        accuracy or agreement points, or MAE added), the ``metric`` the scores hold (``accuracy``,
        ``agreement``, ``mae``, ``mae_to_original``: a regression without labels, against the
        original's outputs), the budget, the drop on the validation and test halves, the removals
        per layer, the probes and sensitivity curves
        (:func:`weightkit.compress.shrink.budget.merge_within_budget`).
    fine_tune : dict or None
        ``merge --fine-tune``: the distillation's epochs and history
        (:class:`weightkit.compress.shrink.distill.DistillResult`).

    The other attributes (``model``, ``skipped``, ``layer_params``, parameter counts,
    ``evaluation``, ``notes``) are those of :class:`weightkit.compress.merge.reporting.report.BaseMergeReport`.
    """

    ratio: float = None
    max_error: float = None
    samples: int = 0
    positions: int = 16
    ridge: float = DEFAULT_RIDGE
    seed: int = 0
    calibration: str = None
    budget: dict = None
    fine_tune: dict = None

    mode = "data"

    def settings(self):
        return {"mode": self.mode, "ratio": self.ratio, "max_error": self.max_error,
                "calibration": {"source": self.calibration, "samples": self.samples, "positions": self.positions,
                                "ridge": self.ridge, "seed": self.seed},
                **({"budget": self.budget} if self.budget is not None else {}),
                **({"fine_tune": self.fine_tune} if self.fine_tune is not None else {})}
