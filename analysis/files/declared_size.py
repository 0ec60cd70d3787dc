"""How many parameters a model's configuration declares, read before Keras builds (and allocates) it.

Keras builds every layer from the configuration, allocating its variables, before it reads a
single weight; a 24 KB file declaring ``Dense(60000)`` on a 60000-wide input allocates 14 GiB.
A layer's saved ``build_config`` states its input shape, from which the usual layers' parameter
counts follow exactly (Dense, convolutions, Embedding, recurrent layers: each kind's
:meth:`~weightkit.analysis.kinds.config_rules.ConfigRules.declared_parameters`); a model whose
declared parameters cannot fit in the weights the file stores is refused by its largest layer.
Layers of other kinds, or without a ``build_config``, are not counted (a lower bound).
"""

from weightkit.analysis.errors import WeightkitError
from weightkit.analysis.kinds.registry import kind_named

__all__ = ["declared_parameters", "check_declared_parameters"]

#: Fewest bytes a declared parameter can be stored in (int4 packs two in a byte).
_MIN_BYTES_PER_PARAMETER = 0.5
_SLACK = 1 << 20


def _input_width(build, config):
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if not isinstance(shape, list) or not shape or not isinstance(shape[-1], int):
        return None
    channel = shape[1] if config.get("data_format") == "channels_first" and len(shape) > 2 else shape[-1]
    return channel if isinstance(channel, int) and channel > 0 else None


def _layer_parameters(class_name, config, build):
    """Declared parameter count of one layer, or None when its kind or shapes are not known here."""
    kind = kind_named(class_name)
    return None if kind is None else kind.declared_parameters(config, _input_width(build, config))


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
