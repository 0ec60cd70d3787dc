"""The disjoint splits of a shrink run: calibration, fine-tuning, validation and the final test.

Every choice of :func:`weightkit.compress.shrink.shrink_model` (which neurons to merge, how many per layer,
when to stop fine-tuning, which quantization mode) is made on the calibration and validation
splits; the test split is read once, at the end, for the accuracy that is reported.

The validation split is half of the dataset's *held-out* split, not a part of its training
split: the original was trained on the training split, so its accuracy there is inflated and a
drop measured there understates the drop on new data (measured on the 64-256-256-10 digits MLP:
a validation carved from the training split showed 0.28 points lost where the test split lost
1.95). Calibration and fine-tuning share the training split, disjointly.
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis.data.datasets import Dataset
from weightkit.analysis.errors import WeightkitError

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
        The other half of the dataset's held-out split: only the reported final accuracy.
    indices : dict of str to ndarray
        Positions in the dataset's training split (``calibration``, ``fine_tune``) and in its
        held-out split (``validation``, ``test``).
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
        """A Dataset for :func:`weightkit.compress.quantize.quantize_model`: calibrates on the calibration split and
        measures on the validation split (the mode choice never sees the test split)."""
        return Dataset(self.x_calibration, None, self.x_validation, self.y_validation,
                       f"{self.source} (validation split)", "classification")


def split_for_shrink(dataset, *, calibration=0.4, validation=0.5, seed=0):
    """Cut a dataset's training split into calibration and fine-tuning, its held-out split into validation and test.

    Parameters
    ----------
    dataset : Dataset
        Classification, one input and one labelled output, fitted to the model.
    calibration : float, default=0.4
        Share of the training split that calibrates; the rest fine-tunes.
    validation : float, default=0.5
        Share of the held-out split that every choice reads; the rest is the final test.
    seed : int, default=0

    Returns
    -------
    ShrinkSplits

    Raises
    ------
    WeightkitError
        Without labels, for regression, several inputs or outputs, or splits too small to cut.
    """
    if dataset.task != "classification" or not dataset.labelled:
        raise WeightkitError(f"--data {dataset.source}: shrink keeps accuracy within --max-drop, so it needs a "
                             "labelled classification dataset (class labels).")
    if isinstance(dataset.x_train, (list, tuple)) or isinstance(dataset.y_train, (list, tuple)):
        raise WeightkitError(f"--data {dataset.source}: shrink takes models with one input and one output; "
                             "quantize or merge the model instead.")
    n, n_held = len(dataset.x_train), len(dataset.x_test)
    n_calibration, n_validation = round(calibration * n), round(validation * n_held)
    if min(n_calibration, n - n_calibration, n_validation, n_held - n_validation) < 10:
        raise WeightkitError(f"--data {dataset.source}: {n} training and {n_held} held-out samples are too few to "
                             "cut into calibration, fine-tuning, validation and test splits of at least 10 each; "
                             "give at least 25 training and 20 held-out samples.")
    rng = np.random.default_rng(seed)
    order, held = rng.permutation(n), rng.permutation(n_held)
    parts = {"calibration": order[:n_calibration], "fine_tune": order[n_calibration:],
             "validation": held[:n_validation], "test": held[n_validation:]}
    x, y = np.asarray(dataset.x_train), np.asarray(dataset.y_train)
    x_held, y_held = np.asarray(dataset.x_test), np.asarray(dataset.y_test)
    if y.ndim == 2:  # one-hot labels become class indices
        y, y_held = y.argmax(axis=1), y_held.argmax(axis=1)
    return ShrinkSplits(x_calibration=x[parts["calibration"]], x_fine_tune=x[parts["fine_tune"]],
                        y_fine_tune=y[parts["fine_tune"]], x_validation=x_held[parts["validation"]],
                        y_validation=y_held[parts["validation"]], x_test=x_held[parts["test"]],
                        y_test=y_held[parts["test"]], indices=parts, source=dataset.source)
