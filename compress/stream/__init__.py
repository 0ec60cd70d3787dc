"""Slice a transformer's residual stream: turn it to its principal directions and keep the strongest (SliceGPT).

:func:`find_streams` reads which tensors the model's ``Add`` calls tie and who writes and reads them,
:func:`stream_basis` measures the stream's directions on data, :func:`sliced_model` builds the narrower model;
:func:`slice_streams` does all three for every stream of a model. ``weightkit shrink`` slices and fine-tunes within a
budget (:mod:`weightkit.compress.shrink.stream_stage`).
"""

from weightkit.compress.stream.api import slice_streams
from weightkit.compress.stream.find import Norm, Reader, Stream, Writer, find_stream, find_streams
from weightkit.compress.stream.slicing import StreamBasis, slice_stream_weights, sliced_model, stream_basis

__all__ = ["Norm", "Reader", "Stream", "StreamBasis", "Writer", "find_stream", "find_streams", "slice_stream_weights",
           "slice_streams", "sliced_model", "stream_basis"]
