"""A ``.tflite`` written again with every repeated part stored once: the same model in fewer bytes.

TFLite's converter writes each tensor's shape, shape signature and quantization parameters as vectors
and tables of their own, one empty buffer per tensor that has no data, and an empty quantization table
for every tensor that is not quantized. On a model of a few thousand parameters those repeats are a
large share of the file (measured 2026-12-07 on the zoo's ViT as int8-io, converted with
:func:`weightkit.compress.quantize.lean_ops.fewer_ops`: 58,240 bytes written again in 44,552, names kept). A
FlatBuffer may point to one vector or table from many places, so :func:`compact_flatbuffer`

- points every tensor without data at buffer 0 (the schema's empty sentinel) and drops the other
  empty buffers;
- drops quantization tables that hold nothing (no scale, zero point, min, max or details);
- writes each distinct vector (shapes, shape signatures, scales, zero points, op inputs and outputs,
  buffer data), string and table (quantization parameters, op options, tensors, buffers, op codes)
  once and points every user at it.

The model's operators, tensors (by index), values and quantization are unchanged; the interpreter
reads the same numbers (the caller checks the outputs, as :func:`weightkit.compress.shrink.strip.slim_export`
does). Buffer data keeps the alignment the Python writer gives it (its element size), as
``tensorflow.lite.tools.flatbuffer_utils`` does.
"""

import numpy as np

__all__ = ["compact_flatbuffer"]

_IDENTIFIER = b"TFL3"


def _content_key(value):
    """A hashable key equal for two values of the schema's object API exactly when they serialize the same."""
    if isinstance(value, np.ndarray):
        return "array", value.dtype.str, value.shape, value.tobytes()
    if isinstance(value, (list, tuple)):
        return tuple(_content_key(item) for item in value)
    if isinstance(value, (bytes, str, int, float, bool)) or value is None:
        return type(value).__name__, value
    return (type(value).__name__,) + tuple((name, _content_key(item)) for name, item in sorted(vars(value).items())
                                           if name != "Pack")


def _sharing_builder():
    import flatbuffers

    class SharingBuilder(flatbuffers.Builder):
        """A ``flatbuffers.Builder`` that writes each distinct numpy vector and string once."""

        __slots__ = ("vectors", "strings")

        def __init__(self, size):
            super().__init__(size)
            self.vectors, self.strings = {}, {}

        def CreateNumpyVector(self, x):  # noqa: N802 - FlatBuffers' name
            key = (x.dtype.str, x.tobytes())
            if key not in self.vectors:
                self.vectors[key] = super().CreateNumpyVector(x)
            return self.vectors[key]

        def CreateString(self, s, encoding="utf-8", errors="strict"):  # noqa: N802 - FlatBuffers' name
            key = (s, encoding)
            if key not in self.strings:
                self.strings[key] = super().CreateString(s, encoding, errors)
            return self.strings[key]

    return SharingBuilder(1024)


def _share_tables(model, schema, written):
    """Give every table of ``model`` below the subgraphs' operators a ``Pack`` that writes equal tables once."""
    unshared = (schema.ModelT, schema.SubGraphT, schema.OperatorT)  # each one is distinct by position
    seen, stack = set(), [model]
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, list):
            stack.extend(value)
            continue
        if type(value).__module__ != schema.__name__:
            continue
        if not isinstance(value, unshared):
            value.Pack = _shared_pack(value, written)
        stack.extend(vars(value).values())


def _shared_pack(table, written):
    original = type(table).Pack

    def pack(builder):
        key = _content_key(table)
        if key not in written:
            written[key] = original(table, builder)
        return written[key]

    return pack


def _drop_empty_quantization(model):
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            q = tensor.quantization
            if q is not None and all(getattr(q, name) is None for name in ("scale", "zeroPoint", "min", "max",
                                                                             "details")):
                tensor.quantization = None


def _renumber_buffers(model):
    """Every tensor without data reads buffer 0; the buffers nothing needs are dropped."""
    needed = {item.buffer for item in (model.metadata or [])}
    keep = [0] + [index for index, buffer in enumerate(model.buffers) if index and (
        buffer.data is not None or index in needed or buffer.offset or buffer.size)]
    new = {old: index for index, old in enumerate(keep)}
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            tensor.buffer = new.get(tensor.buffer, 0)
    for item in model.metadata or []:
        item.buffer = new[item.buffer]
    model.buffers = [model.buffers[index] for index in keep]


def compact_flatbuffer(content):
    """``content`` written again with each repeated vector, string and table stored once.

    Parameters
    ----------
    content : bytes
        A ``.tflite`` flatbuffer whose buffers are inside the file (the converter's default, not
        ``_experimental_use_buffer_offset``).

    Returns
    -------
    bytes
        The same model (operators, tensor indices, values, quantization), usually smaller; the
        given bytes when writing it again would not be smaller or the model keeps its buffers
        outside the flatbuffer.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    if any(buffer.offset or buffer.size for buffer in model.buffers):
        return bytes(content)  # data after the flatbuffer, addressed by offset: left as it is
    _drop_empty_quantization(model)
    _renumber_buffers(model)
    builder = _sharing_builder()
    _share_tables(model, schema, {})
    builder.Finish(model.Pack(builder), file_identifier=_IDENTIFIER)
    written = bytes(builder.Output())
    return written if len(written) < len(content) else bytes(content)
