"""Fold linear chains: layers with no nonlinearity between them become the one layer they compute.

:func:`fold_linear` is the verb (:mod:`~compress.fold.apply`); the arithmetic is numpy alone
(:mod:`~compress.fold.math`); :class:`FoldReport` says what was folded, what was left alone and
why (:mod:`~compress.fold.report`). The chains themselves are found by
:func:`analysis.linear_chains.find_linear_chains`.
"""

from compress.fold.apply import DEFAULT_SAMPLES, fold_linear
from compress.fold.math import batchnorm_affine, dilate_kernel, fold_conv, fold_dense
from compress.fold.report import ChainFold, FoldReport

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
