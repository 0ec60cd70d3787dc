"""What the command line prints: one module per command's console output."""
