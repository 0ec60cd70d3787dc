"""The options of a data-aware merge (:func:`weightkit.compress.merge.merge_by_data`), checked once, kept together."""

from dataclasses import dataclass

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.merge.fitting.data_fit import DEFAULT_RIDGE
from weightkit.compress.merge.fitting.refit_fit import ALLOCATIONS

__all__ = ["DEFAULT_MAX_ERROR", "DataMergeOptions"]

#: Used when neither a ratio nor a maximum error is given: remove neurons while at most 0.1% of
#: the variance of each consumer's input is lost on the calibration sample. (On a 64-64 digits
#: MLP, 1% removed 45 and 54 of the 64 neurons per layer and cost 2.8 accuracy points; 0.1%
#: removed 26 and 38 and cost 0.56 points, two of 359 test samples.)
DEFAULT_MAX_ERROR = 0.001


@dataclass
class DataMergeOptions:
    """How :func:`weightkit.compress.merge.merge_by_data` merges; every field as its keyword of the same name.

    Attributes
    ----------
    ratio : float or None
    max_error : float or None
        :data:`DEFAULT_MAX_ERROR` when neither it nor ``ratio`` is given.
    layers : list of str or None
    samples : int or None
        None until the calibration data is known (then the number drawn).
    positions, seed : int
    ridge : float
    weigh_by_consumer, refit : bool
    allocation : {"uniform", "global"}
    reestimate_bn : bool
    """

    ratio: float = None
    max_error: float = None
    layers: list = None
    samples: int = None
    positions: int = 16
    seed: int = 0
    ridge: float = DEFAULT_RIDGE
    weigh_by_consumer: bool = True
    refit: bool = True
    allocation: str = "uniform"
    reestimate_bn: bool = False

    def __post_init__(self):
        self.ratio, self.max_error = _check_budget(self.ratio, self.max_error)
        if self.allocation not in ALLOCATIONS:
            raise WeightkitError(f"Invalid value for allocation. Expected one of {list(ALLOCATIONS)}. "
                                 f"Received: allocation={self.allocation!r}.")
        if self.allocation != "uniform" and not (self.refit and self.ratio is not None):
            raise WeightkitError(f"allocation={self.allocation!r}: only with refit=True and a ratio (it spreads the "
                                 "ratio's removals over the groups); pass refit=True, ratio=... or leave "
                                 "allocation='uniform'.")

    @property
    def fit(self):
        """The keywords every fit takes: ``ratio``, ``max_error``, ``ridge``, ``weigh_by_consumer``."""
        return {"ratio": self.ratio, "max_error": self.max_error, "ridge": self.ridge,
                "weigh_by_consumer": self.weigh_by_consumer}


def _check_budget(ratio, max_error):
    if ratio is not None and max_error is not None:
        raise WeightkitError("--ratio and --max-error: give one of them, not both; --ratio removes a fixed share "
                             "of each layer, --max-error removes neurons while the reconstruction stays that good.")
    if ratio is not None and not 0.0 < float(ratio) < 1.0:
        raise WeightkitError(f"--ratio {ratio}: must be between 0 and 1 (the share of each layer's neurons to "
                             "remove), e.g. 0.5.")
    if max_error is not None and not 0.0 <= float(max_error) <= 1.0:
        raise WeightkitError(f"--max-error {max_error}: must be between 0 and 1 (the fraction of each consumer's "
                             "input variance allowed to be lost), e.g. 0.01.")
    if ratio is None and max_error is None:
        return None, DEFAULT_MAX_ERROR
    return (None if ratio is None else float(ratio)), (None if max_error is None else float(max_error))
