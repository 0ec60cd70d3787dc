"""Fitting a data-aware merge: the numpy least-squares cores, probing, and BatchNormalization re-estimation."""
