"""How many parameters a model's configuration declares, read before Keras builds (and allocates) it.

Keras builds every layer from the configuration, allocating its variables, before it reads a
single weight; a 24 KB file declaring ``Dense(60000)`` on a 60000-wide input allocates 14 GiB.
A layer's saved ``build_config`` states its input shape, from which the usual layers' parameter
counts follow exactly (Dense, convolutions, Embedding, recurrent layers); a model whose
declared parameters cannot fit in the weights the file stores is refused by its largest layer.
Layers of other kinds, or without a ``build_config``, are not counted (a lower bound).
"""

import math

from weightkit.analysis.errors import WeightkitError

__all__ = ["declared_parameters", "check_declared_parameters"]

#: Fewest bytes a declared parameter can be stored in (int4 packs two in a byte).
_MIN_BYTES_PER_PARAMETER = 0.5
_SLACK = 1 << 20
_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def _input_width(build, config):
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if not isinstance(shape, list) or not shape or not isinstance(shape[-1], int):
        return None
    channel = shape[1] if config.get("data_format") == "channels_first" and len(shape) > 2 else shape[-1]
    return channel if isinstance(channel, int) and channel > 0 else None


def _kernel_size(config):
    size = config.get("kernel_size")
    size = [size] if isinstance(size, int) else size
    if not isinstance(size, list) or not all(isinstance(k, int) and k > 0 for k in size):
        return None
    return math.prod(size)


def _layer_parameters(class_name, config, build):
    """Declared parameter count of one layer, or None when its kind or shapes are not known here."""
    if class_name == "Embedding":
        dims = config.get("input_dim"), config.get("output_dim")
        return dims[0] * dims[1] if all(isinstance(d, int) and d > 0 for d in dims) else None
    width = _input_width(build, config)
    if width is None:
        return None
    units, filters = config.get("units"), config.get("filters")
    if class_name == "Dense" and isinstance(units, int) and units > 0:
        return width * units + units
    if class_name in _GATES and isinstance(units, int) and units > 0:
        gates = _GATES[class_name]
        return gates * units * (width + units + 1)  # GRU with reset_after has one bias more: a lower bound
    kernel = _kernel_size(config)
    if kernel is None:
        return None
    multiplier = config.get("depth_multiplier", 1) if isinstance(config.get("depth_multiplier", 1), int) else 1
    if class_name in ("DepthwiseConv1D", "DepthwiseConv2D"):
        return kernel * width * multiplier
    if not isinstance(filters, int) or filters <= 0:
        return None
    if class_name in ("SeparableConv1D", "SeparableConv2D"):
        return kernel * width * multiplier + width * multiplier * filters
    if class_name in ("Conv1D", "Conv2D", "Conv3D"):
        groups = config.get("groups", 1) if isinstance(config.get("groups", 1), int) and config.get("groups", 1) else 1
        return kernel * (width // groups) * filters
    if class_name in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
        return kernel * width * filters
    return None


def declared_parameters(config):
    """``[(layer name, class name, parameters)]`` for the layers of a config whose count is known here.

    Parameters
    ----------
    config : dict
        A model's serialized configuration.

    Returns
    -------
    list of tuple
    """
    found, stack = [], [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            inner = item.get("config")
            if isinstance(item.get("class_name"), str) and isinstance(inner, dict):
                count = _layer_parameters(item["class_name"], inner, item.get("build_config"))
                if count is not None:
                    found.append((str(inner.get("name")), item["class_name"], count))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def check_declared_parameters(path, config, stored):
    """Refuse a config declaring more parameters than ``stored`` bytes of weights could hold.

    Parameters
    ----------
    path : str
        Named in the message.
    config : dict
    stored : int
        Bytes of weights the file stores.
    """
    layers = declared_parameters(config)
    total = sum(count for _, _, count in layers)
    if total * _MIN_BYTES_PER_PARAMETER <= 2 * stored + _SLACK:
        return
    name, class_name, count = max(layers, key=lambda layer: layer[2])
    raise WeightkitError(
        f"{path}: layer {name!r} ({class_name}) declares {count:,} parameters, and the model {total:,} in all, but "
        f"the file stores {stored:,} bytes of weights; refusing to build it (Keras would allocate "
        f"{4 * total / (1 << 30):.1f} GiB first): the file is truncated or forged, save the model again with "
        "model.save('model.keras').")
