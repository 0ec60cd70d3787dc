"""The structure of a model: its graph of layer calls, channel dependency groups and linear chains."""
