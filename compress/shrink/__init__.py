"""The smallest model within an accuracy budget: per-layer merge sensitivity, allocation, distillation, quantization.

:func:`shrink_model` is the verb (:mod:`.pipeline`). The parts, each with one job:
:mod:`.splits` (disjoint calibration / fine-tune / validation / test splits), :mod:`.sensitivity`
(per-layer merge curves), :mod:`.allocation` (the greedy path, numpy only), :mod:`.search`
(bisection along it), :mod:`.distill` (knowledge-distillation recovery), :mod:`.checkpoint`
(resume by stage), :mod:`.result` (what is reported).
"""

from weightkit.compress.shrink.allocation import Allocation, greedy_path
from weightkit.compress.shrink.costs import TARGETS, model_cost, multiply_adds
from weightkit.compress.shrink.distill import DistillResult, distill, soft_targets
from weightkit.compress.shrink.pipeline import DEFAULT_MODES, ShrinkOutcome, shrink_model
from weightkit.compress.shrink.result import Candidate, ShrinkResult
from weightkit.compress.shrink.scores import as_probabilities, score_outputs
from weightkit.compress.shrink.sensitivity import DEFAULT_FRACTIONS, LayerSensitivity, measure_sensitivity, merge_allocation
from weightkit.compress.shrink.splits import ShrinkSplits, split_for_shrink

__all__ = [
    "DEFAULT_FRACTIONS",
    "DEFAULT_MODES",
    "TARGETS",
    "Allocation",
    "Candidate",
    "DistillResult",
    "LayerSensitivity",
    "ShrinkOutcome",
    "ShrinkResult",
    "ShrinkSplits",
    "as_probabilities",
    "distill",
    "greedy_path",
    "measure_sensitivity",
    "merge_allocation",
    "model_cost",
    "multiply_adds",
    "score_outputs",
    "shrink_model",
    "soft_targets",
    "split_for_shrink",
]
