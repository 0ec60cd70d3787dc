"""The numeric core: similarity matrices between neuron rows and the groups they form (numpy, scipy; no Keras)."""
