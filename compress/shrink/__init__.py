"""The smallest model within an accuracy budget: per-layer merge sensitivity, allocation, distillation, quantization.

:func:`shrink_model` is the verb (:mod:`.pipeline`). The parts, each with one job:
:mod:`.options` (the checked keywords), :mod:`.run` (one run's shared state), :mod:`.stages` and
:mod:`.export` (the four stages), :mod:`.splits` (training / validation / test), :mod:`.sensitivity`
(per-layer merge curves), :mod:`.allocation` (the greedy path, numpy only), :mod:`.search`
(bisection along it), :mod:`.distill` (knowledge-distillation recovery), :mod:`.checkpoint`
(resume by stage), :mod:`.result` (what is reported). The same sensitivity, search and distillation
serve ``merge --max-drop`` / ``--fine-tune`` (:mod:`.guided`, :mod:`.budget`, :mod:`.judge`).
"""

from weightkit.compress.shrink.allocation import Allocation, greedy_path
from weightkit.compress.shrink.costs import TARGETS, model_cost, multiply_adds
from weightkit.compress.shrink.budget import (
    BUDGET_FRACTIONS,
    BUDGET_PROBES,
    MERGE_FRACTIONS,
    calibration_inputs,
    fine_tune_merged,
    held_out_halves,
    merge_within_budget,
    split_held_out,
)
from weightkit.compress.shrink.distill import DistillResult, distill, soft_targets
from weightkit.compress.shrink.guided import guided_merge
from weightkit.compress.shrink.judge import UNITS, Judge
from weightkit.compress.shrink.options import ShrinkOptions
from weightkit.compress.shrink.pipeline import DEFAULT_MODES, ShrinkOutcome, shrink_model
from weightkit.compress.shrink.result import Candidate, ShrinkResult
from weightkit.compress.shrink.scores import as_probabilities, score_outputs
from weightkit.compress.shrink.search import search_path, search_removals
from weightkit.compress.shrink.sensitivity import (
    DEFAULT_FRACTIONS,
    LayerSensitivity,
    measure_sensitivity,
    merge_allocation,
    sensitivity_curves,
)
from weightkit.compress.shrink.splits import ShrinkSplits, split_for_shrink

__all__ = [
    "BUDGET_FRACTIONS",
    "BUDGET_PROBES",
    "DEFAULT_FRACTIONS",
    "DEFAULT_MODES",
    "MERGE_FRACTIONS",
    "TARGETS",
    "UNITS",
    "Allocation",
    "Candidate",
    "DistillResult",
    "Judge",
    "LayerSensitivity",
    "ShrinkOptions",
    "ShrinkOutcome",
    "ShrinkResult",
    "ShrinkSplits",
    "as_probabilities",
    "calibration_inputs",
    "distill",
    "fine_tune_merged",
    "greedy_path",
    "held_out_halves",
    "guided_merge",
    "measure_sensitivity",
    "merge_allocation",
    "merge_within_budget",
    "model_cost",
    "multiply_adds",
    "score_outputs",
    "search_path",
    "search_removals",
    "sensitivity_curves",
    "shrink_model",
    "soft_targets",
    "split_for_shrink",
    "split_held_out",
]
