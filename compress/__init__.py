"""Shrink trained Keras models: decorrelation regularizer, neuron merging, quantization."""

__all__ = []
