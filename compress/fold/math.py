"""The arithmetic of folding a linear chain: weight arrays in, one layer's weights out (numpy only).

A chain is a list of steps, each one of

- ``("dense", kernel (fan_in, units), bias (units,) or None)``;
- ``("conv", kernel (*k, c_in, c_out), bias or None, strides, dilation)``;
- ``("affine", scale (channels,), shift (channels,))`` (a BatchNormalization at inference).

Everything is computed in float64 and returned as float32.
"""

import itertools

import numpy as np

__all__ = ["batchnorm_affine", "dilate_kernel", "fold_conv", "fold_dense"]


def batchnorm_affine(gamma, beta, mean, variance, epsilon):
    """A BatchNormalization at inference as ``x * scale + shift``.

    Parameters
    ----------
    gamma, beta : ndarray of shape (channels,) or None
        None when the layer has no scale (``scale=False``) or no center (``center=False``).
    mean, variance : ndarray of shape (channels,)
    epsilon : float

    Returns
    -------
    scale, shift : ndarray of shape (channels,), float64
    """
    mean = np.asarray(mean, dtype=np.float64)
    scale = 1.0 / np.sqrt(np.asarray(variance, dtype=np.float64) + float(epsilon))
    if gamma is not None:
        scale = scale * np.asarray(gamma, dtype=np.float64)
    shift = -mean * scale
    if beta is not None:
        shift = shift + np.asarray(beta, dtype=np.float64)
    return scale, shift


def fold_dense(steps):
    """One Dense layer's kernel and bias from a chain of dense and affine steps.

    Parameters
    ----------
    steps : list of tuple
        ``("dense", kernel, bias)`` and ``("affine", scale, shift)`` in chain order.

    Returns
    -------
    kernel : ndarray of shape (fan_in, units), float32
        ``W = W_1 ··· W_k`` with each affine step's scale folded in.
    bias : ndarray of shape (units,), float32, or None
        ``b = (…(b_1 W_2 + b_2) W_3 …) + b_k``; None when no step has a bias or shift.

    Examples
    --------
    >>> w1, w2 = np.eye(2) * 2, np.ones((2, 1))
    >>> fold_dense([("dense", w1, None), ("dense", w2, np.ones(1))])
    (array([[2.],
           [2.]], dtype=float32), array([1.], dtype=float32))
    """
    kernel, bias, biased = None, None, False
    for step in steps:
        if step[0] == "dense":
            _, w, b = step
            w = np.asarray(w, dtype=np.float64)
            kernel = w if kernel is None else kernel @ w
            bias = None if bias is None else bias @ w
            if b is not None:
                bias = (0.0 if bias is None else bias) + np.asarray(b, dtype=np.float64)
                biased = True
        else:
            _, scale, shift = step
            kernel = np.diag(scale) if kernel is None else kernel * scale
            bias = shift if bias is None else bias * scale + shift
            biased = True
    if not biased:
        return kernel.astype(np.float32), None
    return kernel.astype(np.float32), np.asarray(bias, dtype=np.float32)


def dilate_kernel(kernel, dilation):
    """Spread a kernel's taps ``dilation`` apart with zeros between: ``(*k, ...)`` -> ``(*(d (k-1) + 1), ...)``."""
    rank = len(dilation)
    shape = [d * (k - 1) + 1 for k, d in zip(kernel.shape[:rank], dilation)] + list(kernel.shape[rank:])
    out = np.zeros(shape, dtype=np.float64)
    out[tuple(slice(None, None, d) for d in dilation)] = kernel
    return out


def _compose(first, second, stride):
    """Kernel of ``second`` (dilation 1) applied after ``first`` (dilation 1, strides ``stride``)."""
    rank = len(stride)
    k1, k2 = first.shape[:rank], second.shape[:rank]
    size = [a + s * (b - 1) for a, b, s in zip(k1, k2, stride)]
    out = np.zeros(size + [first.shape[-2], second.shape[-1]], dtype=np.float64)
    for j in itertools.product(*(range(b) for b in k2)):
        where = tuple(slice(s * i, s * i + a) for i, s, a in zip(j, stride, k1))
        out[where] += np.tensordot(first, second[j], axes=([-1], [0]))
    return out


def fold_conv(steps, dilation):
    """One convolution's kernel and bias from a chain of valid-padded conv and affine steps.

    Parameters
    ----------
    steps : list of tuple
        ``("conv", kernel, bias, strides, dilation)`` and ``("affine", scale, shift)``.
    dilation : tuple of int
        The folded convolution's dilation (from :func:`weightkit.analysis.structure.linear_chains.conv_geometry`):
        the composed kernel keeps every ``dilation``-th tap, the others being zero by construction.

    Returns
    -------
    kernel : ndarray of shape (*kernel_size, c_in, c_out), float32
    bias : ndarray of shape (c_out,), float32, or None
    """
    pre_scale, pre_shift, index = None, None, 0
    while steps[index][0] == "affine":  # leading BatchNormalizations: scale and shift of the input
        _, scale, shift = steps[index]
        pre_scale = scale if pre_scale is None else pre_scale * scale
        pre_shift = shift if pre_shift is None else pre_shift * scale + shift
        index += 1
    kernel, bias, stride, biased = None, None, None, pre_scale is not None
    for step in steps[index:]:
        if step[0] == "conv":
            _, w, b, strides, dil = step
            w = dilate_kernel(np.asarray(w, dtype=np.float64), dil)
            rank = len(strides)
            if kernel is None:
                kernel, stride = w, tuple(strides)
                if pre_scale is not None:  # (x * scale + shift) * W = x * (scale W) + shift · ΣW
                    bias = pre_shift @ w.sum(axis=tuple(range(rank)))
                    kernel = w * pre_scale[:, None]
            else:
                if bias is not None:
                    bias = bias @ w.sum(axis=tuple(range(rank)))
                kernel = _compose(kernel, w, stride)
                stride = tuple(a * b for a, b in zip(stride, strides))
            if b is not None:
                bias = (0.0 if bias is None else bias) + np.asarray(b, dtype=np.float64)
                biased = True
        else:
            _, scale, shift = step
            kernel = kernel * scale
            bias = shift if bias is None else bias * scale + shift
            biased = True
    taps = tuple(slice(None, None, d) for d in dilation)
    kernel = kernel[taps]
    return kernel.astype(np.float32), (np.asarray(bias, dtype=np.float32) if biased else None)
