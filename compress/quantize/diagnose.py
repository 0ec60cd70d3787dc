"""Name the layer behind a converter failure or a float op left in an integer model.

TFLite tensor names and the MLIR converter's error locations keep the Keras layer path of the
exported graph (``sequential_1/lstm_1/TensorArrayV2_1``: Keras adds ``_1`` inside the export
scope). :func:`layer_in` maps such a path back to a layer name of the model; :func:`float_ops`
lists the ops of an integer model that still compute in float with the layer each one sits in.
"""

import re

import numpy as np

from weightkit.compress.quantize.evaluate import make_interpreter

__all__ = ["describe", "flex_ops", "float_ops", "layer_in"]

# Ops that move or reinterpret data (or read only a shape): running them on a float tensor is
# not float arithmetic, so they do not break an integer-only model.
_NON_COMPUTE_OPS = {"QUANTIZE", "DEQUANTIZE", "SHAPE"}
_PATH = re.compile(r"[A-Za-z0-9_.\-]+(?:/[A-Za-z0-9_.\-]+)+")


def _component_names(component):
    # The export scope suffixes every name once (layer "dense" -> "dense_1", "dense_1" -> "dense_1_1"):
    # the name without its last suffix comes first.
    stripped = re.sub(r"_\d+$", "", component)
    if stripped != component:
        yield stripped
    yield component


def layer_in(text, layer_names):
    """The deepest layer of ``layer_names`` named in the first layer path of ``text``, or None.

    Parameters
    ----------
    text : str
        A tensor name or a converter message (``loc(... "sequential_1/lstm_1/TensorArrayV2_1@...")``).
    layer_names : collection of str
        The model's layer names (the model's own name excluded).

    Returns
    -------
    str or None
    """
    names = set(layer_names)
    for path in _PATH.findall(str(text)):
        found = None
        for component in path.split("@")[0].split("/"):
            for candidate in _component_names(component):
                if candidate in names:
                    found = candidate
                    break
        if found is not None:
            return found
    return None


def float_ops(content, layer_names=()):
    """Ops of a ``.tflite`` model that still compute in floating point, with their layers.

    Parameters
    ----------
    content : bytes
    layer_names : collection of str, default=()

    Returns
    -------
    list of (str, str or None)
        ``(op name, layer name)`` pairs, sorted, one per pair (QUANTIZE, DEQUANTIZE and SHAPE
        excepted); empty for a model that is integer throughout.
    """
    interpreter = make_interpreter(content)
    details = getattr(interpreter, "_get_ops_details", None)
    if details is None:  # an interpreter without op introspection: nothing to check
        return []
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    found = set()
    for op in details():
        if op["op_name"] in _NON_COMPUTE_OPS:
            continue
        outputs = [tensors[int(i)] for i in op["outputs"] if int(i) >= 0 and int(i) in tensors]
        floats = [t for t in outputs if np.dtype(t["dtype"]).kind == "f"]
        if floats:
            found.add((op["op_name"], layer_in(floats[0]["name"], layer_names)))
    return sorted(found, key=lambda pair: (pair[0], pair[1] or ""))


def flex_ops(error_or_content):
    """TensorFlow ops a SELECT_TF_OPS conversion kept (``Flex...`` custom ops), sorted."""
    text = error_or_content.decode("latin-1") if isinstance(error_or_content, bytes) else str(error_or_content)
    return sorted(set(re.findall(r"Flex[A-Z][A-Za-z0-9]+", text)))


def describe(pairs):
    """``"ZEROS_LIKE (layer lstm), SELECT_V2"``: ops with their layers where known."""
    by_op = {}
    for op, layer in pairs:
        by_op.setdefault(op, set())
        if layer:
            by_op[op].add(layer)
    return ", ".join(f"{op} (layer {', '.join(sorted(layers))})" if layers else op for op, layers in by_op.items())
