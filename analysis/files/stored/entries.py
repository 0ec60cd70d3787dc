"""Neuron-row entries of a stored model, planned from its configuration and read one layer at a time.

The plan (names, types, skipped layers) needs only the configuration and the datasets' sizes;
the arrays are read when their layer's turn comes, by a reader thread that fetches layer k+1
while layer k's matrices are computed (:func:`iter_stored_rows`). Memory holds about two layers'
weights and one layer's matrices, however large the model.

Entries are named, typed, counted and skipped exactly as :func:`weightkit.analysis.model_analysis.collect_entries`
does for the loaded model. Classes are known by their serialized name only: a Lambda layer and a
class from outside Keras are listed as skipped with the reason, never run.
"""

import collections
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from weightkit.analysis.kinds.composites import stored_sublayers
from weightkit.analysis.kinds.layers import neuron_rows
from weightkit.analysis.kinds.registry import kind_named, skip_reason_named
from weightkit.analysis.files.own_classes import ecosystem_skip_reason
from weightkit.analysis.results import SkippedLayer
from weightkit.analysis.rows import NeuronRows
from weightkit.analysis.files.stored.layout import StoredLayer
from weightkit.analysis.files.stored.shapes import first_input_shape, output_shape
from weightkit.analysis.files.stored.weights import StoredLayoutError, layer_arrays

__all__ = ["PlannedLayer", "iter_stored_rows", "plan_entries"]

LAMBDA_SKIP = "Lambda layer: its code is stored in the file and is not run (weight analysis reads only data)"
CUSTOM_SKIP = "custom class {what}: its code is not run (weight analysis reads only data)"


@dataclass
class PlannedLayer:
    """A layer with neuron rows and the names of its entries, before its arrays are read."""

    layer: object
    names: list
    type: str
    applications: int


def _is_foreign(layer):
    module = layer.module
    return isinstance(module, str) and not (module == "keras" or module.startswith("keras."))


def plan_entries(model):
    """The planned layers with rows and the skipped layers of a stored model, in walk order.

    Returns
    -------
    planned : list of PlannedLayer
    skipped : list of SkippedLayer

    Notes
    -----
    Sets ``model.shape_notes``: a note naming the layers whose input shape could not be derived.
    """
    planned, skipped, seen, unknown = [], [], set(), []
    for layer in model.layers:
        params = model.layer_params(layer)
        opened, closed = _opened(model, layer)
        if opened:
            planned.extend(opened)
            skipped.extend(closed)
            continue
        if layer.class_name == "Lambda" or _is_foreign(layer):
            what = layer.item.get("registered_name") or f"{layer.module}.{layer.class_name}"
            reason = LAMBDA_SKIP if layer.class_name == "Lambda" else (
                ecosystem_skip_reason(layer.module, layer.item.get("registered_name")) or CUSTOM_SKIP.format(what=what))
            skipped.append(SkippedLayer(layer.name, layer.class_name, reason, params=params or None))
            continue
        if not params:
            continue
        reason = skip_reason_named(layer.class_name, layer.config)
        if reason is not None:
            skipped.append(SkippedLayer(layer.name, layer.class_name, reason, params=params))
            continue
        kind = kind_named(layer.class_name)
        base, entry_type = kind.stored_entry(layer.name, layer.class_name, layer.config)
        names = []
        for part in kind.entry_parts(layer.config):
            name = base if part is None else f"{base}/{part}"
            if name in seen:
                name = f"{name}#{len(seen)}"
            seen.add(name)
            names.append(name)
        shape = first_input_shape(layer, {layer.name: model.propagated_shape(layer)})
        if shape is None:
            unknown.append(layer.name)
        uses = kind.applications(shape, output_shape(layer.class_name, layer.config, shape))
        planned.append(PlannedLayer(layer, names, entry_type, uses))
    model.shape_notes = [] if not unknown else [
        (f"MACs of {', '.join(map(repr, unknown))} count one position: the input shape cannot be derived from the "
        "file's configuration without Keras (a layer before it that weightkit's shape rules do not know)")]
    return planned, skipped


def _opened(model, layer):
    """``(planned, skipped)`` of the sublayers of a composite or backbone layer the kinds' table knows (keras-hub's
    TransformerEncoder, GemmaBackbone: :func:`weightkit.analysis.kinds.composites.stored_sublayers`), named by
    their paths under it as Keras' path names them (:func:`weightkit.analysis.rows.composite_leaves`); ``([], [])``
    for any other layer, and in a legacy ``.h5`` (whose weight names this reader does not map to sublayers).

    A sublayer of no neuron rows (a backbone's embedding, its normalization) is skipped with its kind's reason.
    """
    subs = stored_sublayers(layer.item.get("registered_name"), layer.config, layer.name)
    if not subs or model.format == "h5":
        return [], []
    planned, skipped = [], []
    for sub in subs:
        name = sub.path.rsplit("/", 1)[-1]
        stored = StoredLayer(name, sub.class_name, sub.config, {}, f"{layer.keras_group}/{sub.group}", layer.h5_group,
                             layer.path, layer.index, f"{layer.keras_group}/", extras={"entry_layer": sub.path})
        kind = kind_named(sub.class_name)
        if kind is None or not kind.has_neurons:
            skipped.append(SkippedLayer(sub.path, sub.type, skip_reason_named(sub.class_name, sub.config),
                                        params=_stored_size(model, stored) or None))
            continue
        names = [sub.path if part is None else f"{sub.path}/{part}" for part in kind.entry_parts(sub.config)]
        planned.append(PlannedLayer(stored, names, sub.type, 1))  # a sublayer's shapes are unknown: one position
    return planned, skipped


def _stored_size(model, layer):
    """Values stored in a sublayer's own ``vars`` (its ``count_params()``: a layer with no sublayers)."""
    with model.open() as handle:
        group = handle.get(f"{layer.keras_group}/vars")
        return 0 if group is None else sum(int(getattr(d, "size", 0)) for d in group.values())


def _rows_of(handle, model, planned):
    """The NeuronRows of one planned layer (its arrays read now), or a SkippedLayer."""
    layer = planned.layer
    config = layer.config
    try:
        arrays = layer_arrays(handle, layer, model.format)
        parts = neuron_rows(layer.class_name, config, arrays)
    except (StoredLayoutError, KeyError, ValueError) as error:
        reason = f"its stored weights are not laid out as {layer.class_name} saves them ({error})"
        entry_layer = layer.extras.get("entry_layer")  # a composite's sublayer: no top-level parameter count
        return [SkippedLayer(entry_layer or layer.name, layer.class_name, reason,
                             params=None if entry_layer else model.layer_params(layer))]
    entries = []
    for name, (_, rows, bias) in zip(planned.names, parts):
        kernel_size = int(rows.size)
        bias_size = 0 if bias is None else int(np.asarray(bias).size)
        entries.append(NeuronRows(name=name, layer_name=layer.extras.get("entry_layer", layer.name), type=planned.type,
                                  rows=rows, bias=bias, params=kernel_size + bias_size,
                                  macs=kernel_size * planned.applications))
    return entries


def iter_stored_rows(model, planned):
    """Yield each planned layer's entries (NeuronRows, or a SkippedLayer when its arrays are unreadable).

    A reader thread reads the next layer's arrays while the caller works on the current one.
    """
    if not planned:
        return
    with model.open() as handle, ThreadPoolExecutor(max_workers=1, thread_name_prefix="weightkit-read") as pool:
        queue = collections.deque(planned)
        pending = pool.submit(_rows_of, handle, model, queue.popleft())
        while pending is not None:
            entries = pending.result()
            pending = pool.submit(_rows_of, handle, model, queue.popleft()) if queue else None
            yield from entries
            del entries
