"""The demo: the whole journey (analyze, retrain, merge, quantize) on a built-in example.

An application of every package, so it lives at the front door: :mod:`~weightkit.demo.examples`
builds and trains the example models, :mod:`~weightkit.demo.journey` runs the stages.
"""
