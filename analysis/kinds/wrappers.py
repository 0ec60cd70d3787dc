"""Wrappers that delegate to the kind of the layer they wrap: Bidirectional and TimeDistributed."""

from weightkit.analysis.kinds.base import LayerKind
from weightkit.analysis.kinds.config_rules import Wrapped
from weightkit.analysis.kinds.recurrent import per_timestep

__all__ = ["BidirectionalKind", "KINDS", "SKIP_BIDIRECTIONAL", "TimeDistributedKind"]

_HALVES = ("forward", "backward")
#: Why a Bidirectional layer's gate entries are not probed (``{name}``: the layer's name).
SKIP_BIDIRECTIONAL = "a Bidirectional layer's halves are mixed in its output; its hidden states are the entry {name!r}"


def _registry():
    """The registry, imported when first asked (it builds its table from this module)."""
    import weightkit.analysis.kinds.registry as registry

    return registry


def _wrapped_class(config):
    inner = config.get("layer") or {}
    return inner.get("class_name"), inner.get("config", {})


def _stored_layer(config):
    """``(class name, config, kind or None)`` of the layer a stored wrapper's config wraps."""
    inner = config.get("layer") or {}
    return inner.get("class_name"), inner.get("config") or {}, _registry().kind_named(inner.get("class_name"))


class BidirectionalKind(LayerKind):
    """A Bidirectional recurrent layer: two halves, each with the wrapped recurrent kind's rows and gates."""

    family = "bidirectional"
    variables = {}
    internal = ("*",)
    wraps = "layer"
    has_neurons = True
    order = 6
    recurrent = True
    over_time = True
    internal_reason = SKIP_BIDIRECTIONAL

    def neuron_rows(self, config, arrays):
        parts = []
        inner_name, _ = _wrapped_class(config)
        kind = _registry().KINDS[inner_name]
        for direction in _HALVES:
            sub = {key.split("/", 1)[1]: value for key, value in arrays.items() if key.startswith(direction + "/")}
            for part, rows, bias in kind.neuron_rows(config, sub):
                parts.append((direction if part is None else f"{direction}/{part}", rows, bias))
        return parts

    def halves(self, layer):
        """``[(prefix, half layer, its kind)]`` for the forward and backward layers."""
        kind_for = _registry().kind_for
        return [(f"{direction}/", half, kind_for(half))
                for direction, half in zip(_HALVES, (layer.forward_layer, layer.backward_layer))]

    def recurrent_halves(self, layer):
        """Whether both halves are SimpleRNN/LSTM/GRU layers."""
        return all(kind is not None and kind.gate_count() is not None for _, _, kind in self.halves(layer))

    def layer_arrays(self, layer):
        arrays = {}
        for prefix, half, kind in self.halves(layer):
            arrays.update({prefix + key: value for key, value in kind.layer_arrays(half).items()})
        return arrays

    def rows_source(self, layer):
        name = _registry().registered_name(layer.forward_layer)
        return self, dict(layer.get_config(), layer={"class_name": name, "config": {}})

    def wrapped_reason(self, layer):
        inner = _registry().kind_for(layer.forward_layer)
        if inner is None or inner.family != "rnn":
            return f"wraps {type(layer.forward_layer).__name__}: only SimpleRNN, LSTM and GRU are supported"
        return None

    # --- a stored config (weightkit.analysis.files.stored) ---------------------------------------------

    def entry_parts(self, config):
        inner = _stored_layer(config)[2]
        return [half if part is None else f"{half}/{part}" for half in _HALVES for part in inner.entry_parts({})]

    def stored_wrapped(self, config):
        class_name, inner_config, _ = _stored_layer(config)
        return [Wrapped(f"{half}/", f"{half}_layer", f"{half}_", class_name, inner_config) for half in _HALVES]

    def wrapped_config_reason(self, config):
        class_name, _, inner = _stored_layer(config)
        if inner is None or inner.family != "rnn":
            return f"wraps {class_name}: only SimpleRNN, LSTM and GRU are supported"
        return None

    def output_shape(self, config, input_shape):
        _, inner_config, inner = _stored_layer(config)
        out = None if inner is None else inner.output_shape(inner_config, input_shape)
        if out is None or config.get("merge_mode", "concat") != "concat":
            return out
        return out[:-1] + (None if out[-1] is None else 2 * out[-1],)

    def weight_shapes(self, config, input_shape):
        shapes = {}
        for half in self.stored_wrapped(config):
            inner = _registry().kind_named(half.class_name)
            sub = None if inner is None else inner.weight_shapes(half.config, input_shape)
            if sub is None:
                return None
            shapes.update({half.prefix + key: shape for key, shape in sub.items()})
        return shapes

    def applications(self, input_shape, output_shape):
        return per_timestep(input_shape)

    def kernel_layers(self, layer, name):
        return [entry for prefix, half, kind in self.halves(layer) if kind is not None and kind.has_neurons
                for entry in kind.kernel_layers(half, f"{name}/{prefix.rstrip('/')}")]

    def weight_keys(self, layer):
        return [prefix + v.name for prefix, half, _ in self.halves(layer) for v in half.weights]

    def wrapped_configs(self, config):
        return [config[key] for key in (self.wraps, "backward_layer") if isinstance(config.get(key), dict)]

    def resized_config(self, config, units):
        for inner in self.wrapped_configs(config):
            _registry().KINDS[inner["class_name"]].resized_config(inner["config"], units)
        return config

    def absorbing_layout(self, layer):
        return "bidirectional" if self.recurrent_halves(layer) else None

    def input_kernels(self, layer, prefix=""):
        return [key for half_prefix, half, kind in self.halves(layer)
                for key in kind.input_kernels(half, prefix + half_prefix)]

    def input_kernel_variables(self, layer):
        return [v for _, half, kind in self.halves(layer) for v in kind.input_kernel_variables(half)]

    def gate_count(self, layer=None):
        return None

    def unmergeable_reason(self, layer):
        return ("the halves of a Bidirectional layer merge by data only (--mode data): each half's units are "
                "rebuilt from its own hidden states")

    def support(self, name):
        return dict(super().support(name), decorrelate="each direction's kernel (per gate)")

    def entries_text(self):
        return "forward and backward, per gate"

    def merge_support(self):  # compress/merge/bidirectional.py
        return ("its units by data (`--mode data`), each half on its own states (`concat`) or both together "
                "(`sum`, `ave`); absorbs a merged layer in both halves")


class TimeDistributedKind(LayerKind):
    """A TimeDistributed layer: the wrapped layer's rows, on every time step."""

    family = "time_distributed"
    variables = {}
    wraps = "layer"
    has_neurons = True
    order = 7

    def inner_kind(self, layer):
        return _registry().kind_for(layer.layer)

    def neuron_rows(self, config, arrays):
        inner_name, inner_config = _wrapped_class(config)
        return _registry().KINDS[inner_name].neuron_rows(inner_config, arrays)

    def layer_arrays(self, layer):
        return self.inner_kind(layer).layer_arrays(layer.layer)

    def rows_source(self, layer):
        return self.inner_kind(layer), layer.layer.get_config()

    def wrapped_reason(self, layer):
        reason = _registry().skip_reason(layer.layer)
        return None if reason is None else f"wraps {type(layer.layer).__name__}: {reason}"

    def probe_skip(self, layer, part):
        inner = self.inner_kind(layer)
        return None if inner is None else inner.probe_skip(layer, part)

    # --- a stored config (weightkit.analysis.files.stored) ---------------------------------------------

    def entry_parts(self, config):
        _, inner_config, inner = _stored_layer(config)
        return inner.entry_parts(inner_config)

    def stored_wrapped(self, config):
        class_name, inner_config, _ = _stored_layer(config)
        return [Wrapped("", "layer", None, class_name, inner_config)]

    def wrapped_config_reason(self, config):
        class_name, inner_config, _ = _stored_layer(config)
        reason = _registry().skip_reason_named(class_name, inner_config)
        return None if reason is None else f"wraps {class_name}: {reason}"

    def stored_entry(self, name, class_name, config):
        inner_name, inner_config, _ = _stored_layer(config)
        return f"{name}/{inner_config.get('name')}", f"TimeDistributed({inner_name})"

    def output_shape(self, config, input_shape):
        _, inner_config, inner = _stored_layer(config)
        out = None if inner is None else inner.output_shape(inner_config, (input_shape[0],) + input_shape[2:])
        return None if out is None else input_shape[:2] + out[1:]

    def weight_shapes(self, config, input_shape):
        _, inner_config, inner = _stored_layer(config)
        inner_shape = None if input_shape is None or len(input_shape) < 3 else (input_shape[0],) + input_shape[2:]
        return None if inner is None else inner.weight_shapes(inner_config, inner_shape)

    def applications(self, input_shape, output_shape):
        return per_timestep(input_shape)

    def kernel_layers(self, layer, name):
        inner = self.inner_kind(layer)
        if inner is None or not inner.has_neurons:
            return []
        return inner.kernel_layers(layer.layer, f"{name}/{layer.layer.name}")

    def entry_name(self, layer, part):
        base = f"{layer.name}/{layer.layer.name}"
        return base if part is None else f"{base}/{part}"

    def entry_type(self, layer):
        return f"TimeDistributed({type(layer.layer).__name__})"

    def wrapped_configs(self, config):
        return [config[self.wraps]] if isinstance(config.get(self.wraps), dict) else []

    def resized_config(self, config, units):
        for inner in self.wrapped_configs(config):
            _registry().KINDS[inner["class_name"]].resized_config(inner["config"], units)
        return config

    def neuron_layer(self, layer):
        inner = self.inner_kind(layer)
        return layer.layer if inner is not None and inner.merge == "neurons" else None

    def absorbing_layout(self, layer):
        inner = self.inner_kind(layer)
        if inner is None or inner.merge != "neurons" or inner.layout_problem(layer.layer) is not None:
            return None
        return inner.input_layout(False)

    def wrapped_producer(self, layer):
        return layer.layer if self.absorbing_layout(layer) is not None else None

    def wrapped_step(self, layer):
        """The kind of the wrapped layer when it is a pass-through step (run on every time step), else None."""
        inner = self.inner_kind(layer)
        return inner if inner is not None and inner.merge in STEP_ROLES else None

    def input_kernel_variables(self, layer):
        return [layer.layer.kernel]

    def unmergeable_reason(self, layer):
        return f"{type(layer).__name__}({type(layer.layer).__name__}): only a wrapped Dense or Conv layer merges"

    def support(self, name):
        return dict(super().support(name), activations="as the wrapped layer", decorrelate="the wrapped layer's")

    def entries_text(self):
        return "the wrapped layer's"

    def merge_support(self):  # compress/merge/planning/consumers.py
        return "yes, a wrapped Dense or Conv"


#: Roles of the steps a TimeDistributed wrapper carries a group through, on every time step.
STEP_ROLES = ("identity", "affine", "activation", "max", "linear", "zero_pad", "depthwise", "flatten")

KINDS = {"Bidirectional": BidirectionalKind(), "TimeDistributed": TimeDistributedKind()}
