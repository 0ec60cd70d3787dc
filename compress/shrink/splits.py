"""The splits of a shrink run: the training split, and the held-out split cut into validation and test.

Every choice of :func:`weightkit.compress.shrink.shrink_model` (which neurons to merge, how many per
layer, when to stop fine-tuning, which quantization mode) reads the training and validation
splits; the test split is read once, at the end, for the score that is reported. ``merge
--max-drop`` cuts the same way (:func:`weightkit.compress.shrink.budget.held_out_halves`,
:func:`weightkit.compress.shrink.budget.calibration_inputs`), so both choose on the same samples.

The merges calibrate on the training inputs (all of them up to
:data:`weightkit.compress.merge.by_data.MAX_CALIBRATION_SAMPLES`, drawn as ``merge`` draws them) and
the distillation fine-tune trains on the whole training split. Measured 2026-12-07 on the digits
MLP at a 1-point budget: merges fitted on 575 of the 1,438 training inputs (the 40% a disjoint
calibration split held before) lost 1.11 points at the allocation that lost 0.56 when fitted on
all of them, so the search stopped one path step earlier (17,226 against 8,970 parameters).

The validation split is half of the dataset's *held-out* split, not a part of its training
split: the original was trained on the training split, so its accuracy there is inflated and a
drop measured there understates the drop on new data (measured on the 64-256-256-10 digits MLP:
a validation carved from the training split showed 0.28 points lost where the test split lost
1.95).
"""

from dataclasses import dataclass

import numpy as np

from weightkit.analysis.data.batches import n_samples, take
from weightkit.analysis.data.datasets import Dataset
from weightkit.analysis.errors import WeightkitError
from weightkit.compress.shrink.budget import calibration_inputs, held_out_halves

__all__ = ["ShrinkSplits", "split_for_shrink"]


@dataclass
class ShrinkSplits:
    """The arrays of one shrink run. ``x_*``: one array, or a list (one per model input); ``y_*``: the
    labels of every output (one array, or a list with None for an output without labels).

    Attributes
    ----------
    x_calibration : ndarray of shape (n_calibration, ...)
        Training inputs that fit the data-aware merges and calibrate the integer quantization modes.
    x_fine_tune, y_fine_tune : ndarray of shape (n_train, ...)
        The whole training split: the distillation fine-tune trains on it. Labels as the dataset
        gives them (class indices or one-hot, per sample or per element).
    x_validation, y_validation : ndarray of shape (n_validation, ...)
        Every score a choice reads: sensitivity, allocation, early stopping, the budget checks,
        the quantization mode.
    x_test, y_test : ndarray of shape (n_test, ...)
        The other half of the dataset's held-out split: only the reported final scores.
    indices : dict of str to ndarray
        Positions in the dataset's training split (``calibration``, ``fine_tune``) and in its
        held-out split (``validation``, ``test``; disjoint).
    source : str
    task : {"classification", "regression"}
        The first output's, which the budget reads.
    """

    x_calibration: object
    x_fine_tune: object
    y_fine_tune: object
    x_validation: object
    y_validation: object
    x_test: object
    y_test: object
    indices: dict
    source: str = ""
    task: str = "classification"

    def sizes(self):
        """``{"calibration": n, "fine_tune": n, "validation": n, "test": n}``."""
        return {name: len(index) for name, index in self.indices.items()}

    def first_labels(self, split):
        """The first output's labels of ``split`` (``"fine_tune"``, ``"validation"``, ``"test"``), or None."""
        y = getattr(self, f"y_{split}")
        return y[0] if isinstance(y, list) else y

    def quantize_view(self):
        """A Dataset for :func:`weightkit.compress.quantize.quantize_model`: calibrates on the calibration inputs
        and runs on the validation split, without labels (shrink scores every mode itself)."""
        return Dataset(self.x_calibration, None, self.x_validation, None, f"{self.source} (validation split)", None)


def split_for_shrink(dataset, *, validation=0.5, seed=0):
    """The training split (merge calibration, fine-tuning) and the held-out split cut into validation and test.

    Parameters
    ----------
    dataset : Dataset
        Fitted to the model; labels of the first output at least (classes, or regression targets,
        per sample or per element); one array or a list of them per input and output.
    validation : float, default=0.5
        Share of the held-out split that every choice reads; the rest is the final test. Only
        0.5 draws the halves ``merge --max-drop`` draws.
    seed : int, default=0

    Returns
    -------
    ShrinkSplits

    Raises
    ------
    WeightkitError
        Without labels of the first output, or with splits too small to cut.
    """
    first = dataset.y_train[0] if isinstance(dataset.y_train, list) else dataset.y_train
    if first is None:
        raise WeightkitError(f"--data {dataset.source}: shrink keeps a score within --max-drop (accuracy, or MAE for "
                             "a regression), so it needs labels of the model's first output.")
    n, n_held = n_samples(dataset.x_train), n_samples(dataset.x_test)
    if min(n, n_held - round(validation * n_held), round(validation * n_held)) < 10:
        raise WeightkitError(f"--data {dataset.source}: {n} training and {n_held} held-out samples are too few to "
                             "cut into training, validation and test splits of at least 10 each; give at least 10 "
                             "training and 20 held-out samples.")
    x_calibration, calibration = calibration_inputs(dataset.x_train, seed=seed)
    validation_index, test_index = held_out_halves(n_held, n_train=n, seed=seed, share=validation)
    every = np.arange(n)
    return ShrinkSplits(x_calibration=x_calibration, x_fine_tune=dataset.x_train, y_fine_tune=dataset.y_train,
                        x_validation=take(dataset.x_test, validation_index),
                        y_validation=take(dataset.y_test, validation_index),
                        x_test=take(dataset.x_test, test_index), y_test=take(dataset.y_test, test_index),
                        indices={"calibration": calibration, "fine_tune": every, "validation": validation_index,
                                 "test": test_index}, source=dataset.source, task=dataset.task or "classification")
