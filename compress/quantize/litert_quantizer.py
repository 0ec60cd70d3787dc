"""LiteRT's post-conversion quantizer (``ai-edge-quantizer``) on a float32 ``.tflite`` model.

The float model is calibrated once (every tensor's range over a seeded sample of the training
inputs) and then quantized by recipes: a regex over tensor names picks the ops, each with its
activation and weight bits. Inputs are fed by the signature's names in their own types, so an
integer input (token ids for an Embedding) is calibrated and run as integers and never quantized.
Used by the per-layer sensitivity (:mod:`.sensitivity`) and by int16x8 where TF's own 16x8
quantizer fails (:mod:`.int16x8`).
"""


import numpy as np

from weightkit.analysis.errors import WeightkitError
from weightkit.compress.quantize.convert import _quiet, representative_dataset
from weightkit.compress.quantize.evaluate import make_interpreter

__all__ = ["calibrate", "calibration_feed", "output_tensor_names", "quantize_with", "signature_inputs",
           "widen_empty_ranges"]


def quantizer(float_content):
    """An ``ai_edge_quantizer.quantizer.Quantizer`` on the float model; one line naming the extra without it."""
    try:
        from ai_edge_quantizer import quantizer as module
    except ImportError as error:
        raise WeightkitError("--sensitivity, mixed, the int4 modes and int16x8 with integer inputs need "
                             "ai-edge-quantizer (pip install 'weightkit[litert-quantizer]').") from error
    return module.Quantizer(bytearray(float_content))


def signature_inputs(float_content):
    """``(signature key, [input names], resizable batch)`` of a ``.tflite`` model's first signature."""
    interpreter = make_interpreter(float_content)
    signatures = interpreter.get_signature_list()
    key = next(iter(signatures))
    details = interpreter.get_signature_runner(key).get_input_details()
    resizable = all(len(d.get("shape_signature", ())) and int(d["shape_signature"][0]) == -1 for d in details.values())
    return key, list(signatures[key]["inputs"]), resizable


def output_tensor_names(float_content):
    """The tensor names of a ``.tflite`` model's signature outputs, in model order (``output_0``, ``output_1``...).

    An op that writes a model output names its tensor after the signature
    (``StatefulPartitionedCall_1:0``), not after its layer, so a layer's scope regex misses it.
    """
    interpreter = make_interpreter(float_content)
    details = interpreter.get_signature_runner().get_output_details()
    names = {d["index"]: d["name"] for d in interpreter.get_tensor_details()}

    def position(key):
        tail = key.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    return [names[details[key]["index"]] for key in sorted(details, key=position)]


def _one_batch(samples):
    """The samples of a feed (``[{name: (1, ...)}]``) stacked into one ``{name: (n, ...)}``."""
    return [{name: np.concatenate([sample[name] for sample in samples]) for name in samples[0]}] if samples else []


def calibration_feed(float_content, calibration, source, n_samples=200, seed=0):
    """The calibration set as the quantizer takes it: ``{signature: [{input name: (1, ...) array}, ...]}``.

    Parameters
    ----------
    float_content : bytes
    calibration : ndarray of shape (n, ...) or list of them (one per input, model order)
    source : ModelSource
        Gives every input's name and type (integers stay integers).
    n_samples : int, default=200
        A seeded random sample of at most this many inputs.
    seed : int, default=0

    Returns
    -------
    dict
        One batch of every sample when the model's batch is resizable, else one sample per entry.
    """
    key, names, resizable = signature_inputs(float_content)
    dtypes = source.input_dtypes or [source.input_dtype]
    if isinstance(calibration, (list, tuple)) and len(calibration) > 1:
        generate = representative_dataset(list(calibration), n_samples, seed,
                                          names_and_dtypes=(source.input_names, dtypes))
        samples = list(generate())
    else:
        array = calibration[0] if isinstance(calibration, (list, tuple)) else calibration
        dtype = np.dtype(dtypes[0]) if np.dtype(dtypes[0]).kind in "iub" else np.float32
        generate = representative_dataset(np.asarray(array), n_samples, seed, dtype=dtype)
        samples = [{names[0]: batch[0]} for batch in generate()]
    # The quantizer keeps a moving average (factor 0.95) of each batch's min/max, not the min/max over all
    # batches: fed one sample at a time, the ranges shrink to a typical sample's and the rest are clipped
    # (a Dense model's mean error 0.024 against TF's 0.005 in int8). One batch of every sample gives the true range.
    return {key: _one_batch(samples) if resizable else samples}


def calibrate(float_content, feed, activation_bits=8):
    """Calibration result of the float model on ``feed`` (from :func:`calibration_feed`), empty ranges widened.

    See :func:`widen_empty_ranges`.
    """
    q = quantizer(float_content)
    q.add_static_config(regex=".*", operation_name="*", activation_num_bits=activation_bits, weight_num_bits=8)
    with _quiet(False):
        return widen_empty_ranges(q.calibrate(feed))


def widen_empty_ranges(result):
    """Give every tensor calibrated to the range [0, 0] the range [-1, 1] instead.

    Such a tensor is a constant zero: the zero initial state of a recurrent layer. A matrix
    product of it plus a bias (a GRU's recurrent bias, ``reset_after=True``) gets a bias scale of
    input scale × weight scale, which an empty range makes (nearly) zero: the bias is lost at the
    first step (the zoo's ``gru_sequences`` in int16x8: mean output error 0.024, 0.047 at step 0;
    widened: 0.0011). Zero stays exact at any scale, so the widening changes nothing else.

    Parameters
    ----------
    result : dict
        Tensor name → ``{"min": ndarray, "max": ndarray, ...}``.

    Returns
    -------
    dict
        ``result``, changed in place.
    """
    for name, values in result.items():
        if not isinstance(values, dict) or values.get("min") is None or values.get("max") is None:
            continue
        low, high = np.asarray(values["min"]), np.asarray(values["max"])
        if low.size and not np.any(low) and not np.any(high):
            result[name] = {**values, "min": np.full_like(low, -1.0, dtype=np.float32),
                            "max": np.full_like(high, 1.0, dtype=np.float32)}
    return result


def quantize_with(float_content, regexes, calibration_result, activation_bits=8, weight_bits=8, float_io=False):
    """The float model with the ops matched by each regex quantized (``activation_bits`` activations, ``weight_bits``
    weights, per channel).

    Parameters
    ----------
    float_content : bytes
    regexes : list of str
        Tensor-name patterns; ``[".*"]`` quantizes the whole model.
    calibration_result : dict
        From :func:`calibrate` with the same ``activation_bits``.
    activation_bits : {8, 16}, default=8
    weight_bits : {4, 8}, default=8
    float_io : bool, default=False
        Keep the model's inputs and outputs float (a QUANTIZE after each input, a DEQUANTIZE before
        each output) instead of quantized ones.

    Returns
    -------
    bytes
    """
    q = quantizer(float_content)
    for regex in regexes:
        q.add_static_config(regex=regex, operation_name="*", activation_num_bits=activation_bits,
                            weight_num_bits=weight_bits)
    for edge in ("INPUT", "OUTPUT") if float_io else ():
        q.update_quantization_recipe(regex=".*", operation_name=edge, algorithm_key="no_quantize")
    with _quiet(False):
        return bytes(q.quantize(calibration_result).quantized_model)
