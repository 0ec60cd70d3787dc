"""The disjoint splits of a shrink run: calibration, fine-tuning, validation and the final test.

Every choice of :func:`compress.shrink.shrink_model` (which neurons to merge, how many per layer,
when to stop fine-tuning, which quantization mode) is made on the calibration and validation
splits; the test split is read once, at the end, for the accuracy that is reported.
"""

from dataclasses import dataclass

import numpy as np

from analysis.data import Dataset
from analysis.errors import WeightkitError

__all__ = ["ShrinkSplits", "split_for_shrink"]


@dataclass
class ShrinkSplits:
    """Four disjoint index sets of one dataset, with their arrays.

    Attributes
    ----------
    x_calibration : ndarray of shape (n_calibration, ...)
        Fits the data-aware merges and calibrates the integer quantization modes.
    x_fine_tune, y_fine_tune : ndarray of shape (n_fine_tune, ...), (n_fine_tune,)
        The distillation fine-tune trains on these.
    x_validation, y_validation : ndarray of shape (n_validation, ...), (n_validation,)
        Every accuracy a choice reads: sensitivity, allocation, early stopping, the budget checks,
        the quantization mode.
    x_test, y_test : ndarray of shape (n_test, ...), (n_test,)
        The dataset's held-out split: only the reported final accuracy.
    indices : dict of str to ndarray
        Positions in the dataset's training split (``calibration``, ``fine_tune``, ``validation``)
        and in its test split (``test``).
    source : str
    """

    x_calibration: np.ndarray
    x_fine_tune: np.ndarray
    y_fine_tune: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    indices: dict
    source: str = ""

    def sizes(self):
        """``{"calibration": n, "fine_tune": n, "validation": n, "test": n}``."""
        return {name: len(index) for name, index in self.indices.items()}

    def quantize_view(self):
        """A Dataset for :func:`compress.quantize.quantize_model`: calibrates on the calibration split and
        measures on the validation split (the mode choice never sees the test split)."""
        return Dataset(self.x_calibration, None, self.x_validation, self.y_validation,
                       f"{self.source} (validation split)", "classification")


def split_for_shrink(dataset, *, calibration=0.3, validation=0.25, seed=0):
    """Cut a dataset's training split into calibration, fine-tuning and validation; keep its test split.

    Parameters
    ----------
    dataset : Dataset
        Classification, one input and one labelled output, fitted to the model.
    calibration, validation : float, default=0.3, 0.25
        Shares of the training split; the rest fine-tunes.
    seed : int, default=0

    Returns
    -------
    ShrinkSplits

    Raises
    ------
    WeightkitError
        Without labels, for regression, several inputs or outputs, or a split too small to cut.
    """
    if dataset.task != "classification" or not dataset.labelled:
        raise WeightkitError(f"--data {dataset.source}: shrink keeps accuracy within --max-drop, so it needs a "
                             "labelled classification dataset (class labels).")
    if isinstance(dataset.x_train, (list, tuple)) or isinstance(dataset.y_train, (list, tuple)):
        raise WeightkitError(f"--data {dataset.source}: shrink takes models with one input and one output; "
                             "quantize or merge the model instead.")
    n = len(dataset.x_train)
    n_calibration, n_validation = round(calibration * n), round(validation * n)
    if min(n_calibration, n_validation, n - n_calibration - n_validation, len(dataset.x_test)) < 10:
        raise WeightkitError(f"--data {dataset.source}: {n} training and {len(dataset.x_test)} held-out samples are "
                             "too few to cut into calibration, fine-tuning, validation and test splits of at least "
                             "10 each; give at least 50 training and 10 held-out samples.")
    order = np.random.default_rng(seed).permutation(n)
    parts = {"calibration": order[:n_calibration], "validation": order[n_calibration:n_calibration + n_validation],
             "fine_tune": order[n_calibration + n_validation:]}
    x, y = np.asarray(dataset.x_train), np.asarray(dataset.y_train)
    y_test = np.asarray(dataset.y_test)
    if y.ndim == 2:  # one-hot labels become class indices
        y, y_test = y.argmax(axis=1), y_test.argmax(axis=1)
    parts["test"] = np.arange(len(dataset.x_test))
    return ShrinkSplits(x_calibration=x[parts["calibration"]], x_fine_tune=x[parts["fine_tune"]],
                        y_fine_tune=y[parts["fine_tune"]], x_validation=x[parts["validation"]],
                        y_validation=y[parts["validation"]], x_test=np.asarray(dataset.x_test), y_test=y_test,
                        indices=parts, source=dataset.source)
