"""Push neurons apart: the decorrelation penalty, putting it on a model's kernels, retraining.

:class:`DecorrelationRegularizer` is the penalty (a Keras regularizer on one kernel);
:func:`attach_decorrelation` puts it on every regularizable kernel of a built model;
:class:`RedundancyMonitor` logs the redundancy per epoch; :func:`retrain` runs the whole loop.
"""

from weightkit.compress.decorrelate.kernels import CombinedRegularizer, attach_decorrelation, detach_decorrelation
from weightkit.compress.decorrelate.monitor import RedundancyMonitor, redundancy_summary
from weightkit.compress.decorrelate.penalty import DecorrelationRegularizer, decorrelation_penalty
from weightkit.compress.decorrelate.training import DEFAULT_STRENGTH, RetrainResult, retrain

__all__ = [
    "DEFAULT_STRENGTH",
    "CombinedRegularizer",
    "DecorrelationRegularizer",
    "RedundancyMonitor",
    "RetrainResult",
    "attach_decorrelation",
    "decorrelation_penalty",
    "detach_decorrelation",
    "redundancy_summary",
    "retrain",
]
