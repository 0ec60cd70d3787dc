"""One report for heads and neurons: the attention heads' entries joined to a neuron merge's report.

:func:`weightkit.compress.merge.merge_neurons` merges attention heads first
(:mod:`weightkit.compress.merge.heads`) and the neurons of the model that gives; this puts the heads'
``name/heads`` entries among the layers in model order, replaces the neuron merge's "left alone" line
of each attention layer by what the heads merge did (or its own reason), and counts parameters from
the original model.
"""

from dataclasses import dataclass

from weightkit.analysis.files.loading import walk_layers
from weightkit.compress.merge.reporting.data_report import LayerDataMerge
from weightkit.compress.merge.reporting.report import LayerMerge

__all__ = ["HeadsDataMerge", "HeadsMerge", "attach_heads"]


def _with_heads(document, entry):
    return {**document, "unit": "heads", "heads": {"before": entry.neurons_before, "after": entry.neurons_after}}


@dataclass
class HeadsMerge(LayerMerge):
    """An attention layer's heads merged by weights (``name/heads``): a :class:`LayerMerge` whose neurons are
    heads (``merges``: ``removed`` and ``keeper`` heads, ``alpha`` the value scale); its dict adds
    ``"unit": "heads"`` and ``"heads": {"before", "after"}``."""

    unit = "head"

    def to_dict(self):
        return _with_heads(super().to_dict(), self)


@dataclass
class HeadsDataMerge(LayerDataMerge):
    """An attention layer's heads merged by data (``name/heads``): a :class:`LayerDataMerge` whose neurons are
    heads (``removed``: each head and the R² of its contribution rebuilt from the kept heads; ``error``: the
    fraction of the layer's output variance lost); its dict adds ``"unit"`` and ``"heads"``."""

    unit = "head"

    def to_dict(self):
        return _with_heads(super().to_dict(), self)


def _layer_of(name):
    return name[:-len("/heads")] if name.endswith("/heads") else name


def attach_heads(report, entries, skipped, original, merged):
    """Join the heads' entries and refusals to a neuron merge's report, in place.

    Parameters
    ----------
    report : BaseMergeReport
        The neuron merge of the model whose heads were merged.
    entries : list of LayerMerge or LayerDataMerge
        One ``name/heads`` entry per attention layer merged on (heads as its neurons).
    skipped : list of SkippedLayer
        Attention layers (``name/heads``) the heads merge left alone, with its reasons.
    original, merged : keras.Model
        The model before the heads merge and the final merged model.
    """
    handled = {_layer_of(item.name) for item in [*entries, *skipped]}
    report.skipped = [item for item in report.skipped if item.name not in handled] + list(skipped)
    order = {layer.name: index for index, layer in enumerate(walk_layers(original))}

    def place(name, default):  # a composite's sublayer (decoder_block_0/attention/heads) sits where its block
        # does, its attention before its FFN
        return order.get(_layer_of(name), order.get(name.split("/")[0], default))

    for entry in entries:
        position = place(entry.name, len(order))
        at = next((i for i, layer in enumerate(report.layers) if place(layer.name, -1) >= position),
                  len(report.layers))
        report.layers.insert(at, entry)
        if entry.params_before != entry.params_after:
            report.layer_params[_layer_of(entry.name)] = (entry.params_before, entry.params_after)
    report.params_before = int(original.count_params())
    report.params_after = int(merged.count_params())
    merged_heads = [f"{e.name} {e.neurons_before} → {e.neurons_after}" for e in entries if e.neurons_before != e.neurons_after]
    if merged_heads:
        report.notes.insert(0, f"attention heads merged before the neurons: {', '.join(merged_heads)}")
