"""The options of one :func:`~weightkit.compress.decorrelate.training.retrain` run.

:class:`RetrainOptions` gathers the keyword arguments that travel together through retrain's steps
(:mod:`weightkit.compress.decorrelate.retrain_steps`), so each step takes one object instead of a
dozen parameters.
"""

from dataclasses import dataclass
from typing import Optional

__all__ = ["DEFAULT_STRENGTH", "RetrainOptions"]

#: Default ``--strength``: chosen with ``benchmarks/bench_regularizer.py`` (see the README).
DEFAULT_STRENGTH = 1.0


@dataclass(frozen=True)
class RetrainOptions:
    """Every setting of a retrain but the model and the data.

    Attributes
    ----------
    strength, epochs, layers, batch_size, learning_rate, validation_split, loss, compiled_loss, work_dir, resume, \
keep_regularizer, threshold, seed, callbacks, verbose, label, unsafe
        As in :func:`~weightkit.compress.decorrelate.training.retrain`.
    """

    strength: float = DEFAULT_STRENGTH
    epochs: int = 10
    layers: Optional[list] = None
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_split: float = 0.1
    loss: Optional[str] = None
    compiled_loss: object = None
    work_dir: Optional[str] = None
    resume: bool = False
    keep_regularizer: bool = False
    threshold: float = 0.9
    seed: int = 0
    callbacks: tuple = ()
    verbose: int = 0
    label: Optional[str] = None
    unsafe: bool = False

    def run_label(self, model):
        """What error messages call the run: ``label``, else ``model '<name>'``."""
        return f"model {model.name!r}" if self.label is None else self.label

    def divergence_message(self, label):
        """The one line a run whose weights became NaN or Inf fails with (``label`` from :meth:`run_label`)."""
        return (f"{label}: training diverged (the weights became NaN or Inf), so nothing was "
                f"written; lower --learning-rate (now {self.learning_rate:g}) or --strength (now {self.strength:g}).")
