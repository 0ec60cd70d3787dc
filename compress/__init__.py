"""Shrink trained Keras models: decorrelation regularizer, neuron merging, quantization."""

from .journey import Journey, Stage, choose_quantize_source, run_journey
from .merge import MERGE_METRICS, apply_relations, carry_relation, merge_redundant
from .merge_data import DataMergePlan, fold_into_rows, plan_data_merge
from .merge_data_model import DataMergeReport, merge_by_data
from .merge_math import Relation
from .merge_plan import MergeSite, find_merge_sites
from .merge_report import MergeReport
from .monitor import RedundancyMonitor, redundancy_summary
from .quantization import QuantizationReport, TFLiteModel, quantize_model, write_outputs
from .regularizer import DecorrelationRegularizer, decorrelation_penalty, kernel_rows
from .retrain import RetrainResult, retrain
from .training_kernels import CombinedRegularizer, attach_decorrelation, detach_decorrelation

__all__ = [
    "Journey",
    "Stage",
    "choose_quantize_source",
    "run_journey",
    "MERGE_METRICS",
    "MergeReport",
    "MergeSite",
    "Relation",
    "apply_relations",
    "carry_relation",
    "find_merge_sites",
    "merge_redundant",
    "DataMergePlan",
    "DataMergeReport",
    "fold_into_rows",
    "merge_by_data",
    "plan_data_merge",
    "CombinedRegularizer",
    "DecorrelationRegularizer",
    "QuantizationReport",
    "RedundancyMonitor",
    "RetrainResult",
    "TFLiteModel",
    "attach_decorrelation",
    "decorrelation_penalty",
    "detach_decorrelation",
    "kernel_rows",
    "quantize_model",
    "redundancy_summary",
    "retrain",
    "write_outputs",
]
