"""Fold linear chains: layers with no nonlinearity between them become the one layer they compute.

:func:`fold_linear` is the verb (:mod:`~weightkit.compress.fold.apply`); the arithmetic is numpy alone
(:mod:`~weightkit.compress.fold.math`); :class:`FoldReport` says what was folded, what was left alone and
why (:mod:`~weightkit.compress.fold.report`). The chains themselves are found by
:func:`weightkit.analysis.structure.linear_chains.find_linear_chains`.
"""

from weightkit.compress.fold.apply import DEFAULT_SAMPLES, fold_linear
from weightkit.compress.fold.math import batchnorm_affine, dilate_kernel, fold_conv, fold_dense
from weightkit.compress.fold.report import ChainFold, FoldReport

__all__ = [
    "DEFAULT_SAMPLES",
    "ChainFold",
    "FoldReport",
    "batchnorm_affine",
    "dilate_kernel",
    "fold_conv",
    "fold_dense",
    "fold_linear",
]
