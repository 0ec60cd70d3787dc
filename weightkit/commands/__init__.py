"""One module per command; each defines a click command of the same name."""
