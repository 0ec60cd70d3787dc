"""Applying a merge to a model's weights: folding relations into consumers, cutting channels, rebuilding."""
