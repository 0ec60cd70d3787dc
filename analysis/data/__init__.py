"""Data: the ``--data`` loader, CSV and token-id checks, batches, and matching a dataset to a model."""
