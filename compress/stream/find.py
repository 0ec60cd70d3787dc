"""Find a model's residual streams: the tensors its summing joins tie, who writes them and who reads them.

A stream is a set of tensors that ``Add`` (and ``Subtract``, ``Average``) calls tie together: in a pre-norm
transformer, the embeddings' sum and every block's output. It can be turned and sliced
(:mod:`weightkit.compress.stream.slicing`) when

- every tensor entering it comes from a *writer* linear in its output channels (a Dense without activation, an
  Embedding, a MultiHeadAttention's output projection: :meth:`~weightkit.analysis.kinds.stream_rules.StreamRules.
  stream_writes`), called once;
- every other reader is a *normalization* over the channels (LayerNormalization, RMSNormalization), whose own
  readers take its output into kernels whose rows are the channels (Dense, MultiHeadAttention's query, key and
  value), directly or through layers that treat every channel alike (dropout, average pooling);
- or, when no normalization in it subtracts a mean, such a kernel reading the stream directly.

What breaks a rule is the stream's *problem*, one sentence naming the layer; the stream is then left alone.
"""

from dataclasses import dataclass, field

from weightkit.analysis.kinds.registry import kind_for
from weightkit.analysis.structure.graph import ModelGraph

__all__ = ["Norm", "Reader", "Stream", "Writer", "find_stream", "find_streams"]


@dataclass
class Writer:
    """A layer call whose output enters the stream: ``writes`` are ``[(array key, channel axis)]``."""

    layer: str
    writes: list


@dataclass
class Reader:
    """A layer call whose ``kernels`` (``[(kernel key, bias key or None)]``) read the stream's channels on their
    first axis, after ``norm`` (a :class:`Norm`'s layer name) or directly (None)."""

    layer: str
    kernels: list
    norm: str = None


@dataclass
class Norm:
    """A normalization over the stream's channels: its scale and offset keys (or None), whether it centers, its
    epsilon, and the tensor of the stream it reads."""

    layer: str
    scale: str
    offset: str
    centers: bool
    epsilon: float
    reads: int


@dataclass
class Stream:
    """One residual stream of a model.

    Attributes
    ----------
    width : int
        Its channels.
    joins : list of str
        The summing joins that make it.
    tensors : list of int
        Its flat tensor ids (:class:`~weightkit.analysis.structure.graph.ModelGraph`).
    writers, norms, readers : list
        :class:`Writer`, :class:`Norm` and :class:`Reader` (readers after a norm and direct ones).
    problem : str or None
        Why it cannot be sliced; None when it can.
    """

    width: int
    joins: list
    tensors: list
    writers: list = field(default_factory=list)
    norms: list = field(default_factory=list)
    readers: list = field(default_factory=list)
    problem: str = None

    @property
    def centers(self):
        """Whether its normalizations subtract the channels' mean (its writers are then centered)."""
        return any(norm.centers for norm in self.norms)

    @property
    def observed(self):
        """The tensors its readers read: where its directions are measured."""
        return sorted({norm.reads for norm in self.norms} | set(self._direct))

    @property
    def label(self):
        """``"the stream of b0_res1, b0_res2, ..."``: its joins, named."""
        names = ", ".join(self.joins[:3]) + (", ..." if len(self.joins) > 3 else "")
        return f"the residual stream of {names}"

    _direct: list = field(default_factory=list, repr=False)


def _describe(layer):
    return f"{layer.name} ({type(layer).__name__})"


def _sum_join(node):
    kind = kind_for(node.layer)
    return getattr(kind, "combine", None) == "sum" and len(node.outputs) == 1


def _components(graph):
    """``[(join nodes, tensor ids)]``: the tensors the summing joins tie, one entry per stream."""
    parent = {}

    def root(t):
        while parent.setdefault(t, t) != t:
            t = parent[t]
        return t

    joins = [node for node in graph.nodes if _sum_join(node)]
    for node in joins:
        for t in node.inputs[1:] + node.outputs:
            parent[root(t)] = root(node.inputs[0])
    groups = {}
    for node in joins:
        entry = groups.setdefault(root(node.outputs[0]), ([], set()))
        entry[0].append(node)
        entry[1].update(node.inputs + node.outputs)
    return list(groups.values())


class _Reading:
    """Walks one stream's writers and readers, stopping at the first problem."""

    def __init__(self, graph, joins, tensors):
        self.graph, self.joins = graph, {id(node) for node in joins}
        shapes = {graph.shape(t) for t in tensors}
        self.stream = Stream(int(graph.shape(min(tensors))[-1] or 0), [node.layer.name for node in joins],
                             sorted(tensors))
        if len(shapes) != 1 or self.stream.width < 2 or len(next(iter(shapes))) < 2:
            self.stream.problem = f"its joins broadcast or its tensors have no channel axis (shapes {sorted(shapes)})"
        self.seen_kernels = set()

    def fail(self, reason):
        if self.stream.problem is None:
            self.stream.problem = reason

    def shared(self, layer):
        if self.graph.is_shared(layer):
            self.fail(f"{_describe(layer)} is called more than once (a shared layer)")
            return True
        return False

    def writer(self, tensor):
        node = self.graph.producer(tensor)
        if node is None:
            name = dict(zip(self.graph.input_ids, self.graph.input_names)).get(tensor, "?")
            return self.fail(f"it starts at model input {name!r}, which no weight writes")
        if id(node) in self.joins or self.shared(node.layer):
            return None
        kind = kind_for(node.layer)
        writes = None if kind is None else kind.stream_writes(node.layer)
        if writes is None:
            return self.fail(f"{_describe(node.layer)} writes into it and is not linear in its output channels")
        if node.layer.name not in [w.layer for w in self.stream.writers]:
            self.stream.writers.append(Writer(node.layer.name, writes))
        return None

    def reader(self, node, tensor, norm):
        """A layer reading ``tensor`` (the stream, or a norm's output) through kernels; passes are walked."""
        if (self.graph.shape(tensor) or (None,))[-1] != self.stream.width:
            return self.fail(f"{_describe(node.layer)} reads it where its channels are not the last axis")
        kind = kind_for(node.layer)
        if kind is not None and kind.stream_passes(node.layer):
            if len(node.inputs) == len(node.outputs) == 1:
                return self.readers_of(node.outputs[0], norm)
            return self.fail(f"{_describe(node.layer)} reads it together with another tensor (a mask)")
        arguments = node.arguments(getattr(kind, "call_arguments", ()))
        carried = {name for name, ids in arguments.items() if tensor in ids}
        kernels = None if kind is None else kind.stream_reads(node.layer, carried, set(arguments))
        if kernels is None:
            what = f"the output of {norm}" if norm else "it"
            return self.fail(f"{_describe(node.layer)} reads {what} and is neither a normalization over its "
                             "channels nor a kernel over them")
        if self.shared(node.layer):
            return None
        offset = next((n.offset for n in self.stream.norms if n.layer == norm), None)
        if offset is not None and any(bias is None for _, bias in kernels):
            return self.fail(f"{_describe(node.layer)} has no bias to take the offset of {norm}")
        for kernel, _ in kernels:
            if (node.layer.name, kernel) in self.seen_kernels:
                return self.fail(f"{_describe(node.layer)} reads it twice into {kernel}")
            self.seen_kernels.add((node.layer.name, kernel))
        self.stream.readers.append(Reader(node.layer.name, kernels, norm))
        return None

    def readers_of(self, tensor, norm):
        if self.graph.is_output(tensor):
            return self.fail(f"{'the output of ' + norm if norm else 'it'} is a model output")
        for node in self.graph.readers(tensor):
            self.reader(node, tensor, norm)
        return None

    def stream_reader(self, node, tensor):
        """A layer reading the stream itself: a normalization, or a kernel."""
        kind = kind_for(node.layer)
        norm = None if kind is None else kind.stream_norm(node.layer, len(self.graph.shape(tensor)))
        if norm is None:
            problem = None if kind is None else kind.stream_norm_problem(node.layer, len(self.graph.shape(tensor)))
            if problem:
                return self.fail(f"{_describe(node.layer)} {problem}")
            before = len(self.stream.readers)
            self.reader(node, tensor, None)
            if len(self.stream.readers) > before:  # a kernel reads the stream itself: measured there too
                self.stream._direct.append(tensor)
            return None
        if self.shared(node.layer):
            return None
        self.stream.norms.append(Norm(node.layer.name, *norm, reads=tensor))
        return self.readers_of(node.outputs[0], node.layer.name)

    def read(self):
        graph = self.graph
        for tensor in self.stream.tensors:
            self.writer(tensor)
            if graph.is_output(tensor):
                self.fail("it is a model output")
            for node in graph.readers(tensor):
                if id(node) not in self.joins:
                    self.stream_reader(node, tensor)
        centering = {norm.centers for norm in self.stream.norms}
        if len(centering) > 1:
            self.fail("its normalizations mix centering (LayerNormalization) and not (RMSNormalization)")
        if self.stream.centers and self.stream._direct:
            direct = next(r.layer for r in self.stream.readers if r.norm is None)
            self.fail(f"{direct} reads it without a normalization, while its LayerNormalizations need it centered")
        if not self.stream.norms and not self.stream._direct:
            self.fail("nothing reads it through a kernel")
        return self.stream


def find_streams(model, graph=None):
    """Every residual stream of ``model``, each with its writers, normalizations and readers, or its problem.

    Parameters
    ----------
    model : keras.Model
    graph : ModelGraph, default=None

    Returns
    -------
    list of Stream
        In the order of their first join.
    """
    graph = graph or ModelGraph(model)
    streams = [_Reading(graph, joins, tensors).read() for joins, tensors in _components(graph)]
    return sorted(streams, key=lambda s: min(s.tensors))


def find_stream(model, joins):
    """The stream of ``model`` made by the joins named ``joins`` (found again after another stream was sliced)."""
    return next(stream for stream in find_streams(model) if stream.joins == joins)
