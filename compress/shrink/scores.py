"""How a candidate is scored against the original: accuracy, agreement and the teacher's KL divergence.

Arrays in, numbers out; :func:`predict_probabilities` is the only part that runs a model.
"""

import numpy as np

__all__ = ["as_probabilities", "element_classes", "element_probabilities", "predict_probabilities", "score_outputs"]

_EPS = 1e-7


def as_probabilities(outputs, activation):
    """Class probabilities from a classifier's outputs.

    Parameters
    ----------
    outputs : ndarray of shape (n_samples, n_classes) or (n_samples, 1)
    activation : str
        The output layer's activation: ``softmax`` (already probabilities), ``sigmoid`` (one
        column: the positive class), anything else: logits.

    Returns
    -------
    ndarray of shape (n_samples, n_classes), float64, rows summing to 1
    """
    outputs = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if outputs.shape[1] == 1:
        p = outputs[:, 0] if activation == "sigmoid" else 1.0 / (1.0 + np.exp(-outputs[:, 0]))
        p = np.clip(p, 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)
    if activation == "softmax":
        p = np.clip(outputs, 0.0, None)
        return p / np.maximum(p.sum(axis=1, keepdims=True), _EPS)
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def element_probabilities(output, activation):
    """Class probabilities per element of a classification output, classes on the last axis.

    Parameters
    ----------
    output : ndarray of shape (n_samples, ..., n_classes), (n_samples, ..., 1) or (n_samples,)
        A one-column output is a binary class (see :func:`as_probabilities`).
    activation : str

    Returns
    -------
    ndarray of shape (n_elements, max(n_classes, 2)), float64
        ``n_elements`` is ``output.size // n_classes``, in C order.
    """
    output = np.asarray(output)
    width = output.shape[-1] if output.ndim > 1 else 1
    return as_probabilities(output.reshape(-1, width), activation)


def element_classes(y, output):
    """Class labels per element, shape ``(n_elements,)``: indices as given, or one-hot labels (the output's
    shape, two columns or more) turned into indices."""
    y, output = np.asarray(y), np.asarray(output)
    width = output.shape[-1] if output.ndim > 1 else 1
    if width >= 2 and y.shape == output.shape:
        return y.argmax(axis=-1).reshape(-1)
    return y.reshape(-1).astype(np.int64)


def score_outputs(probabilities, y, teacher=None):
    """Accuracy on labels, and agreement and KL divergence against the teacher's probabilities.

    Parameters
    ----------
    probabilities : ndarray of shape (n_samples, n_classes)
    y : ndarray of shape (n_samples,)
        Class indices.
    teacher : ndarray of shape (n_samples, n_classes), default=None
        The original model's probabilities on the same inputs.

    Returns
    -------
    dict
        ``accuracy``; with a teacher also ``agreement`` (share of equal argmax) and ``kl`` (mean
        KL(teacher ‖ candidate) in nats, the smooth error the allocation ranks by).
    """
    predicted = probabilities.argmax(axis=1)
    result = {"accuracy": float(np.mean(predicted == np.asarray(y).reshape(-1)))}
    if teacher is not None:
        result["agreement"] = float(np.mean(predicted == teacher.argmax(axis=1)))
        kl = np.sum(teacher * (np.log(teacher + _EPS) - np.log(probabilities + _EPS)), axis=1)
        result["kl"] = float(np.mean(kl))
    return result


def predict_probabilities(model, x, activation, batch_size=256):
    """A Keras model's (or :class:`weightkit.compress.quantize.TFLiteModel`'s) class probabilities on ``x``."""
    try:
        outputs = model.predict(x, batch_size=batch_size, verbose=0)
    except TypeError:  # a TFLiteModel takes no verbose
        outputs = model.predict(x, batch_size=batch_size)
    return as_probabilities(outputs, activation)
